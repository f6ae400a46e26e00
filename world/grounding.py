"""Grounding object words in their masks: the training signal and the measure of it.

Prompt-to-prompt and LocalBlend need cross-attention maps in which an object's words light up
where the object is. A model trained on captions alone learns that slowly; the sticker world
knows every object's exact mask, so training adds a small loss that moves each naming word's
attention mass into its object's mask (a token-level grounding loss). The model card measures
the same quantity: the share of a word's attention that falls inside the mask.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from engine.attention_control import AttentionLayer
from world.scene import POSITIONS

INSIDE_COVERAGE = 0.25  # a map cell is inside an object when the object covers this much of it


def mask_at(mask: np.ndarray, side: int) -> torch.Tensor:
    """An object's 0..1 image mask as a boolean side x side grid of map cells."""
    coverage = Image.fromarray(mask.astype(np.float32)).resize((side, side), Image.BOX)
    return torch.from_numpy(np.asarray(coverage, np.float32) > INSIDE_COVERAGE)


def share_inside(heat: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Fraction of attention mass inside a mask; both shaped (..., cells)."""
    return (heat * inside).sum(-1) / heat.sum(-1).clamp_min(1e-8)


def scene_cells(masks: dict[str, np.ndarray], sides: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Per map side, a rendering's object masks as a (positions, side*side) boolean tensor, one
    row per entry of POSITIONS (empty rows where no object stands). The trainer keeps these
    for its whole pool, rendered once, instead of rendering each batch."""
    out = {}
    for side in sides:
        cells = torch.zeros(len(POSITIONS), side * side, dtype=torch.bool)
        for row, position in enumerate(POSITIONS):
            if position in masks:
                cells[row] = mask_at(masks[position], side).flatten()
        out[side] = cells
    return out


def word_masks(cells: list[torch.Tensor], groundings: list[dict[str, list[int]]],
               tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per caption token, the mask of the object it names.

    `cells[i]` is scene i's (positions, side*side) mask grid from `scene_cells`;
    `groundings[i]` maps an object position to the word indices that name it (see
    `scene.grounded_caption`); every grammar word is one token, so word i is token i + 1.
    Returns masks (batch, tokens, side*side) and a 0/1 weight (batch, tokens) for grounded tokens.
    """
    cells_per_map = cells[0].shape[-1]
    masks = torch.zeros(len(cells), tokens, cells_per_map)
    weights = torch.zeros(len(cells), tokens)
    rows = {position: row for row, position in enumerate(POSITIONS)}
    for i, (grid, grounding) in enumerate(zip(cells, groundings, strict=True)):
        for position, words in grounding.items():
            for word in words:
                if word + 1 < tokens:
                    masks[i, word + 1] = grid[rows[position]].float()
                    weights[i, word + 1] = 1.0
    return masks, weights


class AttentionRecorder:
    """An attention controller (see `engine.attention_control`) that keeps the head-averaged
    cross-attention probabilities of chosen resolutions, with their gradients."""

    def __init__(self, resolutions: tuple[int, ...]):
        self.resolutions = resolutions
        self.maps: dict[int, list[torch.Tensor]] = {side: [] for side in resolutions}

    def wants(self, layer: AttentionLayer) -> bool:
        return layer.is_cross and layer.resolution in self.resolutions

    def __call__(self, probs: torch.Tensor, layer: AttentionLayer) -> torch.Tensor:
        self.maps[layer.resolution].append(probs.float().mean(dim=1))  # (batch, queries, keys)
        return probs


def grounding_loss(recorder: AttentionRecorder,
                   targets: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Mean over recorded layers and grounded tokens of (1 - share inside the mask)^2."""
    losses = []
    for side, layer_maps in recorder.maps.items():
        masks, weights = targets[side]
        for probs in layer_maps:
            share = share_inside(probs.transpose(1, 2), masks)
            losses.append(((1 - share) ** 2 * weights).sum() / weights.sum().clamp_min(1.0))
    return torch.stack(losses).mean()
