"""Prompt-to-prompt (Hertz et al.): edit by injecting the source prompt's attention.

The sampling batch ends with the conditional pair [cond source, cond target] (before it come
the unconditional items: both, or only the target's when the source branch is not guided). In
the conditional pair the target's cross-attention is replaced by the source's (through a token
alignment) for the first `cross_replace` of the steps, its self-attention for the first
`self_replace` at the coarser layers, and chosen words are reweighted. LocalBlend keeps the
target's latents equal to the source's outside the region the edited words attend to (in a
replace, the new words' part of it that joins the old object's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.attention_control import AttentionLayer, AttentionStore
from engine.prompt_alignment import TokenAlignment


@dataclass(frozen=True)
class Schedule:
    """Which steps and layers are edited."""

    steps: int
    cross_replace: float
    self_replace: float
    self_max_resolution: int  # self-attention is replaced only at layers this coarse or coarser

    def cross_active(self, step: int) -> bool:
        return step < round(self.cross_replace * self.steps)

    def self_active(self, step: int, layer: AttentionLayer) -> bool:
        return (step < round(self.self_replace * self.steps)
                and layer.resolution <= self.self_max_resolution)


class PromptToPrompt:
    """The attention controller of one source -> target edit."""

    def __init__(self, alignment: TokenAlignment, schedule: Schedule,
                 reweight: torch.Tensor | None, store: AttentionStore):
        self.alignment = alignment
        self.schedule = schedule
        self.reweight = reweight  # (target tokens,) attention scale per token, or None
        self.store = store
        self.step = 0
        self._on_device: dict[tuple, tuple[torch.Tensor, ...]] = {}

    def _tensors(self, like: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """The alignment's mapper and mask and the reweighting on `like`'s device and dtype,
        copied there once per edit rather than at every layer of every step."""
        key = (like.device, like.dtype)
        if key not in self._on_device:
            a = self.alignment
            self._on_device[key] = (
                a.mapper.to(like.device, like.dtype), a.from_source.to(like.device, like.dtype),
                None if self.reweight is None else self.reweight.to(like.device, like.dtype))
        return self._on_device[key]

    def begin_step(self, step: int) -> None:
        self.step = step

    def wants(self, layer: AttentionLayer) -> bool:
        if layer.is_cross:
            return (self.store.wants(layer) or self.schedule.cross_active(self.step)
                    or self.reweight is not None)
        return self.schedule.self_active(self.step, layer)

    def __call__(self, probs: torch.Tensor, layer: AttentionLayer) -> torch.Tensor:
        source, target = probs[-2], probs[-1]
        target = self._edit_cross(source, target) if layer.is_cross else source
        probs = probs.clone()
        probs[-1] = target
        if self.store.wants(layer):
            self.store.add(probs)
        return probs

    def _edit_cross(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mapper, keep, reweight = self._tensors(source)
        if self.schedule.cross_active(self.step):
            target = (source @ mapper) * keep + target * (1 - keep)
        if reweight is not None:
            target = target * reweight
        return target


class LocalBlend:
    """Confine an edit to where the edited words attend: elsewhere keep the source latents."""

    def __init__(self, store: AttentionStore, source_tokens: list[int], target_tokens: list[int],
                 threshold: float, start_step: int, user_mask: torch.Tensor | None = None,
                 growth: int = 0, region: torch.Tensor | None = None):
        self.store = store
        self.source_tokens, self.target_tokens = source_tokens, target_tokens
        self.threshold = threshold
        self.start_step = start_step
        self.user_mask = user_mask  # (side, side) in [0, 1] at any resolution, or None
        self.growth = growth  # latent pixels the words' mask is grown by in every direction
        self.region = region  # (side, side) in [0, 1]: the words' mask only inside it
        self.mask: torch.Tensor | None = None

    def word_mask(self, latent_side: int) -> torch.Tensor:
        """Binary (side, side) mask of the union of the edited words' attention.

        In a replace (source and target words both given) the new words' part is kept only
        where it joins the replaced words' region: the new words also attend a little to the
        photo's other objects, a learned word's several tokens at its low threshold most (on
        the bundled model, replacing one shape with a learned character at 50 steps took the
        shape beside it into the mask and turned it into a dot), and what the edit may change
        is the replaced object's place and what grows out of it. The union is then grown by
        `growth` pixels, and kept only inside `region` when one was given (all of the region
        when the words attend nowhere in it).
        """
        if self.user_mask is not None:
            mask = self.user_mask.float()[None, None]
            return F.interpolate(mask, size=(latent_side, latent_side), mode="bilinear")[0, 0] > 0.5
        maps = self.store.maps()  # (items, side, side, tokens); items: [source, target]
        source = self._heat_mask(maps[0], self.source_tokens, latent_side)
        target = self._heat_mask(maps[1], self.target_tokens, latent_side)
        if source is not None and target is not None:
            target = connected_to(target, grown(source))
        mask = torch.stack([m for m in (source, target) if m is not None]).any(0)
        for _ in range(self.growth):
            mask = grown(mask)
        if self.region is not None:  # a place chosen for the edit: its words' part there
            region = F.interpolate(self.region.float()[None, None], size=(latent_side,) * 2,
                                   mode="bilinear")[0, 0] > 0.5
            inside = mask & region
            mask = inside if bool(inside.any()) else region
        return mask

    def _heat_mask(self, maps: torch.Tensor, tokens: list[int],
                   latent_side: int) -> torch.Tensor | None:
        """Where `tokens` attend above the threshold in one branch's maps (side, side,
        tokens), or None without tokens."""
        if not tokens:
            return None
        heat = maps[:, :, tokens].sum(-1)[None, None]
        heat = F.max_pool2d(heat, 3, stride=1, padding=1)
        heat = F.interpolate(heat, size=(latent_side, latent_side), mode="bilinear")[0, 0]
        return heat / heat.max().clamp_min(1e-8) > self.threshold

    def __call__(self, step: int, latents: torch.Tensor) -> torch.Tensor | None:
        if step < self.start_step:
            return None
        self.mask = self.word_mask(latents.shape[-1]).to(latents.device)
        m = self.mask.to(latents.dtype)
        blended = latents.clone()
        blended[1] = latents[0] + m * (latents[1] - latents[0])
        return blended


def grown(mask: torch.Tensor) -> torch.Tensor:
    """A binary mask grown by one pixel in every direction (diagonals included)."""
    return F.max_pool2d(mask.float()[None, None], 3, stride=1, padding=1)[0, 0] > 0


def connected_to(mask: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """The parts of a binary mask that touch `seed` (8-connected), the rest dropped.

    Grown from the seed inside the mask until it stops changing (morphological
    reconstruction): a few tensor operations on a latent-sized mask, where a labelling
    library would add a dependency for one call.
    """
    kept = seed & mask
    while True:
        more = grown(kept) & mask
        if torch.equal(more, kept):
            return kept
        kept = more
