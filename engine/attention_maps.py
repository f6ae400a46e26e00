"""Pictures of cross-attention: which part of the image each word of a prompt looked at."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

# Words that carry no subject of their own; their maps only add noise to the picture.
FUNCTION_WORDS = frozenset({"a", "an", "the", "with", "on", "in", "and", "of", "at", "to"})
_SPECIAL = ("<|startoftext|>", "<|endoftext|>")
_END_OF_WORD = "</w>"
_CONCEPT_TOKEN = re.compile(r"<([^<>\s|]+)>(?:_\d+)?")


@dataclass(frozen=True)
class PromptWord:
    """One word of a prompt as it was written, and the token positions that spell it.

    A learned concept (``<mochi> <mochi>_1 ...``) is one word named without its brackets
    ("mochi"); a word the tokenizer cut into pieces ("so", "fa</w>") is one word ("sofa").
    """

    text: str
    positions: tuple[int, ...]


def prompt_words(tokens: list[str]) -> list[PromptWord]:
    """The words of a tokenized prompt, in order, without start, end and padding tokens."""
    words: list[PromptWord] = []
    pieces: list[str] = []
    positions: list[int] = []

    def close() -> None:
        if pieces:
            words.append(PromptWord("".join(pieces), tuple(positions)))
        pieces.clear()
        positions.clear()

    for index, token in enumerate(tokens):
        if token in _SPECIAL:
            close()
            continue
        concept = _CONCEPT_TOKEN.fullmatch(token)
        if concept is not None:
            close()
            name = concept.group(1)
            if words and words[-1].text == name and token != f"<{name}>":
                last = words.pop()  # a further vector of the concept just read
                words.append(PromptWord(name, (*last.positions, index)))
            else:
                words.append(PromptWord(name, (index,)))
            continue
        pieces.append(token.removesuffix(_END_OF_WORD))
        positions.append(index)
        if token.endswith(_END_OF_WORD):
            close()
    close()
    return words


def content_words(tokens: list[str]) -> list[PromptWord]:
    """The prompt's words that name something (no articles or prepositions): one map each."""
    return [w for w in prompt_words(tokens) if w.text.lower() not in FUNCTION_WORDS]


def heatmap(values: np.ndarray, size: int) -> Image.Image:
    """A (side, side) map, normalised to its maximum, as a red-yellow heat image."""
    v = values / max(float(values.max()), 1e-8)
    rgb = np.stack([np.clip(v * 2, 0, 1), np.clip(v * 2 - 1, 0, 1), np.zeros_like(v)], -1)
    image = Image.fromarray((rgb * 255).astype(np.uint8))
    return image.resize((size, size), Image.BILINEAR)


def attention_grid(image: Image.Image, maps: torch.Tensor, tokens: list[str],
                   cell: int = 256, columns: int = 3, max_words: int = 11) -> Image.Image:
    """The image, then one overlay per content word of the prompt, labelled with the word.

    `maps` is (side, side, tokens) for one prompt; `tokens` are that prompt's tokens. A word of
    several tokens (a learned concept's vectors, a word cut into pieces) shows the sum of their
    maps. Panels fill rows of at most `columns`, so the picture stays narrow enough to be read
    at the width of a small screen instead of becoming one long strip.
    """
    if columns < 1 or cell < 32:
        raise ValueError("an attention grid needs at least one column of cells of 32 px")
    words = content_words(tokens)[:max_words]
    base = image.convert("RGB").resize((cell, cell), Image.BICUBIC)
    panels = [("result", base)]
    for word in words:
        heat = maps[..., list(word.positions)].float().sum(-1).cpu().numpy()
        panels.append((word.text, Image.blend(base, heatmap(heat, cell), 0.6)))
    font = ImageFont.load_default(size=max(12, cell // 10))
    label_height = round(font.size * 1.5)
    across = min(columns, len(panels))
    rows = -(-len(panels) // across)
    grid = Image.new("RGB", (cell * across, (cell + label_height) * rows), "white")
    draw = ImageDraw.Draw(grid)
    for number, (label, panel) in enumerate(panels):
        x, y = (number % across) * cell, (number // across) * (cell + label_height)
        grid.paste(panel, (x, y))
        text = _fitted(label, font, cell - 8)
        draw.text((x + cell / 2, y + cell + label_height / 2), text, fill="black", font=font,
                  anchor="mm")
    return grid


def _fitted(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """The text, cut with an ellipsis where it would be wider than `width` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def word_mask(maps: torch.Tensor, positions: list[int], size: int,
              threshold: float = 0.3) -> np.ndarray:
    """A soft (size, size) mask of where the given tokens attend, for cut-outs like stickers."""
    heat = maps[..., positions].sum(-1).float().cpu().numpy()
    heat = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-8)
    soft = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize(
        (size, size), Image.BICUBIC), dtype=np.float32) / 255
    return np.clip((soft - threshold) / (1 - threshold) * 2, 0, 1)
