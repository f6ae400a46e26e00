"""Pictures of cross-attention: which part of the image each word of a prompt looked at."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

SKIP_TOKENS = {"<|startoftext|>", "<|endoftext|>", "a</w>", "the</w>", "with</w>", "on</w>",
               "in</w>", "and</w>", "of</w>"}


def token_label(token: str) -> str:
    """A token as a person would read it."""
    return token.replace("</w>", "")


def heatmap(values: np.ndarray, size: int) -> Image.Image:
    """A (side, side) map, normalised to its maximum, as a red-yellow heat image."""
    v = values / max(float(values.max()), 1e-8)
    rgb = np.stack([np.clip(v * 2, 0, 1), np.clip(v * 2 - 1, 0, 1), np.zeros_like(v)], -1)
    image = Image.fromarray((rgb * 255).astype(np.uint8))
    return image.resize((size, size), Image.BILINEAR)


def attention_grid(image: Image.Image, maps: torch.Tensor, tokens: list[str],
                   cell: int = 128, max_words: int = 12) -> Image.Image:
    """The image, then one overlay per meaningful token with its label under it.

    `maps` is (side, side, tokens) for one prompt; `tokens` are that prompt's tokens.
    """
    picked = [(i, t) for i, t in enumerate(tokens) if t not in SKIP_TOKENS][:max_words]
    base = image.convert("RGB").resize((cell, cell), Image.BICUBIC)
    label_height = 18
    grid = Image.new("RGB", (cell * (len(picked) + 1), cell + label_height), "white")
    grid.paste(base, (0, 0))
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    draw.text((4, cell + 2), "photo", fill="black", font=font)
    for column, (index, token) in enumerate(picked, start=1):
        overlay = Image.blend(base, heatmap(maps[..., index].float().cpu().numpy(), cell), 0.6)
        grid.paste(overlay, (column * cell, 0))
        draw.text((column * cell + 4, cell + 2), token_label(token), fill="black", font=font)
    return grid


def word_mask(maps: torch.Tensor, positions: list[int], size: int,
              threshold: float = 0.3) -> np.ndarray:
    """A soft (size, size) mask of where the given tokens attend, for cut-outs like stickers."""
    heat = maps[..., positions].sum(-1).float().cpu().numpy()
    heat = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-8)
    soft = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize(
        (size, size), Image.BICUBIC), dtype=np.float32) / 255
    return np.clip((soft - threshold) / (1 - threshold) * 2, 0, 1)
