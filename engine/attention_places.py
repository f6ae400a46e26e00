"""Places in a photo read from its caption's cross-attention: where a word is, and what is free.

A photo's inversion records where each word of its caption attends (`Inversion.maps`). From
those maps an edit can tell whether a word the caption did not name still finds something in
the photo (a focused map) or nothing (a map spread evenly), and where a new thing can go: the
part of the photo the caption's words leave alone, on the side the user asked for if any, as
big as the things already there and in line with them (`subject_parts`, `others_measure`), so
that someone added to a group photo stands among the others at their size.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from oneword.grammar import Position

# The share of a map's pixels whose attention counts as "where the word is" (its top part).
TOP_SHARE = 0.25
# Each place's horizontal band, as a fraction of the width (left, center, right thirds).
BANDS: dict[Position, tuple[float, float]] = {
    Position.LEFT: (0.0, 1 / 3), Position.CENTER: (1 / 3, 2 / 3), Position.RIGHT: (2 / 3, 1.0)}
# A thing's parts: where its word's attention is at least this share of the word's peak; parts
# smaller than MIN_PART of the word's largest are specks of a vague map, not things.
PART_OF_PEAK = 0.5
MIN_PART = 0.1
# The side of a new thing's square, as a share of the photo's: the others' typical size, kept
# within these bounds (a vague map can make the others look tiny or huge).
SIZE_RANGE = (0.15, 0.7)
DEFAULT_SIZE = 0.4  # without anything to measure
AROUND_AVOIDED = 0.5  # how taken the pixel around a box to avoid counts (the box itself: 1)

Box = tuple[int, int, int, int]  # top, left, bottom, right in map pixels (bottom/right excluded)


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


def connected_parts(mask: torch.Tensor) -> list[Box]:
    """The boxes of the 8-connected parts of a (side, side) boolean mask, largest first.

    Each pixel takes the largest label around it until nothing changes: a few dozen passes on
    an attention map's side of 8 to 64 pixels.
    """
    side_h, side_w = mask.shape
    labels = torch.where(mask, torch.arange(1, mask.numel() + 1, dtype=torch.float32)
                         .view(side_h, side_w), torch.zeros(()))
    while True:
        grown = F.max_pool2d(labels[None, None], 3, stride=1, padding=1)[0, 0] * mask
        if torch.equal(grown, labels):
            break
        labels = grown
    boxes = []
    for label in labels.unique().tolist():
        if label == 0:
            continue
        rows, cols = torch.nonzero(labels == label, as_tuple=True)
        boxes.append((int(rows.min()), int(cols.min()), int(rows.max()) + 1,
                      int(cols.max()) + 1, int(len(rows))))
    boxes.sort(key=lambda b: -b[4])
    return [b[:4] for b in boxes]


def subject_parts(maps: torch.Tensor, words: Iterable[list[int]],
                  least_focus: float) -> list[Box]:
    """The boxes of the things the caption's words find in the photo: for each word whose
    attention is focused (`focus` at least `least_focus`; "photo" or "room" are spread out),
    each connected part of its map near its peak, so "two men" gives one box per man."""
    found: list[Box] = []
    for positions in words:
        if not positions or focus(maps, positions) < least_focus:
            continue
        heat = word_heat(maps, positions)
        parts = connected_parts(heat >= PART_OF_PEAK * heat.max())
        largest = _area(parts[0]) if parts else 0
        found += [part for part in parts if _area(part) >= MIN_PART * largest]
    return found


def _area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def others_measure(parts: list[Box], side: int) -> tuple[tuple[float, float], float] | None:
    """((height, width), level) for a new thing among `parts`: the median height and width of
    their boxes, as shares of the map's side (each within SIZE_RANGE), and the median height of
    their centres, as a share from the top; None when there is nothing to measure."""
    if not parts:
        return None
    low, high = SIZE_RANGE
    heights = [(b[2] - b[0]) / side for b in parts]
    widths = [(b[3] - b[1]) / side for b in parts]
    levels = [(b[0] + b[2]) / 2 / side for b in parts]
    size = (float(np.clip(np.median(heights), low, high)),
            float(np.clip(np.median(widths), low, high)))
    return size, float(np.median(levels))


def free_place(maps: torch.Tensor, taken: list[int], position: Position | None = None,
               size: float | tuple[float, float] = DEFAULT_SIZE, level: float | None = None,
               avoid: Iterable[Box] = ()) -> np.ndarray:
    """A (side, side) mask in {0, 1} of a box where the photo's named things are not.

    `taken` are the token positions of the caption's words for things; their summed attention
    is how occupied each pixel is. The box (`size` of the side: a square, or (height, width))
    with the least of it wins, its centre inside the band of `position` when the user named
    one, anywhere otherwise, and at the height `level` (a share of the side from the top) when
    given, in line with the others. The boxes in `avoid` (the people found in the photo) count
    as fully taken, and the pixel around them half so: the new thing keeps a gap from them
    where there is room. Without any word for a thing the whole photo counts as free and the
    box goes to the middle of the band.
    """
    side = maps.shape[0]
    occupied = (word_heat(maps, taken) if taken else torch.zeros(side, side))[None, None]
    for top, left, bottom, right in avoid:
        occupied[..., top:bottom, left:right] += 1.0
        # the pixel around them: a gap where there is room, as an edit's rim reaches that far
        occupied[..., max(0, top - 1):bottom + 1, max(0, left - 1):right + 1] += AROUND_AVOIDED
    tall, wide = size if isinstance(size, tuple) else (size, size)
    high_px, wide_px = max(1, round(tall * side)), max(1, round(wide * side))
    cost = F.avg_pool2d(occupied, (high_px, wide_px), stride=1)[0, 0]  # every placement
    if level is not None:  # one row of boxes: the one centred nearest the others' level
        top = int(np.clip(round(level * side - high_px / 2), 0, cost.shape[0] - 1))
        cost = torch.full_like(cost, torch.inf).index_copy(0, torch.tensor([top]),
                                                           cost[top:top + 1])
    low, high = BANDS[position] if position is not None else (0.0, 1.0)
    columns = (torch.arange(cost.shape[1]) + wide_px / 2) / side
    rows = (torch.arange(cost.shape[0]) + high_px / 2) / side
    allowed = (columns >= low) & (columns <= high)
    if not bool(allowed.any()):  # a band narrower than one box: the nearest start
        allowed[int(torch.argmin((columns - (low + high) / 2).abs()))] = True
    # Ties (an empty map) go to the band's middle row and column.
    middle = ((columns - (low + high) / 2).abs()[None, :] + (rows - 0.5).abs()[:, None]) * 1e-6
    scored = torch.where(allowed[None, :], cost + middle, torch.inf)
    top, left = divmod(int(torch.argmin(scored)), cost.shape[1])
    mask = np.zeros((side, side), np.float32)
    mask[top:top + high_px, left:left + wide_px] = 1.0
    return mask
