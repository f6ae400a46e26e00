"""Places in a photo read from its caption's cross-attention: where a word is, and what is free.

A photo's inversion records where each word of its caption attends (`Inversion.maps`). From
those maps an edit can tell whether a word the caption did not name still finds something in
the photo (a focused map) or nothing (a map spread evenly), and where a new thing can go: the
part of the photo the caption's words leave alone, on the side the user asked for if any.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from oneword.grammar import Position

# The share of a map's pixels whose attention counts as "where the word is" (its top part).
TOP_SHARE = 0.25
# Each place's horizontal band, as a fraction of the width (left, center, right thirds).
BANDS: dict[Position, tuple[float, float]] = {
    Position.LEFT: (0.0, 1 / 3), Position.CENTER: (1 / 3, 2 / 3), Position.RIGHT: (2 / 3, 1.0)}


def word_heat(maps: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """The summed (side, side) attention of the given token positions, normalised to sum 1."""
    heat = maps[..., positions].float().sum(-1)
    return heat / heat.sum().clamp_min(1e-12)


def focus(maps: torch.Tensor, positions: list[int]) -> float:
    """How much of the words' attention falls on their own top quarter of the pixels.

    An even map (the word finds nothing in particular) gives TOP_SHARE, 0.25; a word on one
    object gives nearly 1.
    """
    heat = word_heat(maps, positions).flatten()
    top = max(1, round(TOP_SHARE * heat.numel()))
    return float(heat.topk(top).values.sum())


def similar_words(maps: torch.Tensor, word: list[int], others: dict[str, list[int]],
                  least: float) -> list[str]:
    """The words among `others` whose attention lies where `word`'s does (cosine >= `least`)."""
    target = word_heat(maps, word).flatten()
    found = []
    for text, positions in others.items():
        heat = word_heat(maps, positions).flatten()
        if float(F.cosine_similarity(target, heat, dim=0)) >= least:
            found.append(text)
    return found


def free_place(maps: torch.Tensor, taken: list[int], position: Position | None = None,
               size: float = 0.4) -> np.ndarray:
    """A (side, side) mask in {0, 1} of a square where the photo's named things are not.

    `taken` are the token positions of the caption's words for things; their summed attention
    is how occupied each pixel is. The square (`size` of the side) with the least of it wins,
    its centre inside the band of `position` when the user named one, anywhere otherwise.
    Without any word for a thing the whole photo counts as free and the square goes to the
    middle of the band.
    """
    side = maps.shape[0]
    occupied = (word_heat(maps, taken) if taken else torch.zeros(side, side))[None, None]
    box = max(1, round(size * side))
    cost = F.avg_pool2d(occupied, box, stride=1)[0, 0]  # (side - box + 1) ** 2 candidates
    low, high = BANDS[position] if position is not None else (0.0, 1.0)
    centres = (torch.arange(cost.shape[1]) + box / 2) / side
    allowed = (centres >= low) & (centres <= high)
    if not bool(allowed.any()):  # a band narrower than one square: the nearest start
        allowed[int(torch.argmin((centres - (low + high) / 2).abs()))] = True
    # Ties (an empty map) go to the band's middle row and column.
    middle = ((centres - (low + high) / 2).abs()[None, :] + (centres - 0.5).abs()[:, None]) * 1e-6
    scored = torch.where(allowed[None, :], cost + middle, torch.inf)
    top, left = divmod(int(torch.argmin(scored)), cost.shape[1])
    mask = np.zeros((side, side), np.float32)
    mask[top:top + box, left:left + box] = 1.0
    return mask
