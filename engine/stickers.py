"""Stickers: the photo's subject cut out along its cross-attention, at Telegram's 512 px.

The subject's mask comes from where the caption's subject words attend while the photo is
DDIM-inverted, so any object the model can name can be cut out without a segmentation model.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from engine.attention_control import AttentionStore, controlled_attention, map_resolution
from engine.attention_maps import word_mask
from engine.errors import PromptError
from engine.images import fit_square
from engine.inversion import ddim_trajectory
from engine.model import DiffusionModel
from engine.prompt_alignment import token_spans

STICKER_SIDE = 512
# English words that never name the thing to cut out: articles, prepositions, places, sizes.
NOT_SUBJECTS = {"a", "an", "the", "of", "on", "in", "with", "and", "at", "to", "photo",
                "picture", "image", "background", "style", "left", "right", "center", "big",
                "small", "is", "are"}
# A word just before one of these describes the setting or the look, not a subject
# ("with grass background", "in pixel style"), whatever the model's vocabulary.
SETTING_NOUNS = ("background", "style")


def subject_words(caption: str) -> list[str]:
    """Caption words that name things rather than places, sizes, backgrounds or styles."""
    words = caption.lower().split()
    setting = {i for i, w in enumerate(words[1:]) if w in SETTING_NOUNS}
    return [w for i, w in enumerate(words) if w not in NOT_SUBJECTS and i not in setting]


def cross_attention_maps(model: DiffusionModel, image: Image.Image, caption: str,
                         steps: int = 20):
    """Cross-attention maps (side, side, tokens) of the caption over the photo, averaged over
    the steps of its DDIM inversion, on the CPU whatever the model's device."""
    store = AttentionStore(map_resolution(model.unet))
    image = fit_square(image, model.image_size)
    cond = model.encode_text([caption]).float()
    with controlled_attention(model.unet, store):
        ddim_trajectory(model, model.encode_image(image), cond, steps)
    return store.maps()[0].cpu()


def make_sticker(model: DiffusionModel, image: Image.Image, caption: str,
                 words: list[str] | None = None, steps: int = 20) -> Image.Image:
    """A 512x512 RGBA sticker of the subject named by `words` (default: the caption's nouns)."""
    words = words or subject_words(caption)
    spans = token_spans(model.tokenizer, caption)
    positions = [p for w in words for p in spans.positions(w)]
    if not positions:
        raise PromptError("I can't tell what to cut out: the caption names no subject")
    maps = cross_attention_maps(model, image, caption, steps)
    alpha = word_mask(maps, positions, STICKER_SIDE)
    photo = fit_square(image, STICKER_SIDE).convert("RGBA")
    return outlined(photo, alpha)


def outlined(photo: Image.Image, alpha: np.ndarray, border: int = 10) -> Image.Image:
    """The photo where `alpha` is, on a white outline, transparent elsewhere."""
    mask = Image.fromarray((alpha * 255).astype(np.uint8))
    outline = mask.filter(ImageFilter.MaxFilter(2 * (border // 2) + 1)).filter(
        ImageFilter.GaussianBlur(1))
    sticker = Image.new("RGBA", photo.size, (255, 255, 255, 0))
    sticker.paste(Image.new("RGBA", photo.size, (255, 255, 255, 255)), mask=outline)
    sticker.paste(photo, mask=mask)
    return sticker


def sticker_webp(sticker: Image.Image) -> bytes:
    """Telegram's static sticker format: WEBP with one side exactly 512 px."""
    if STICKER_SIDE not in sticker.size:
        sticker = sticker.resize((STICKER_SIDE, STICKER_SIDE), Image.LANCZOS)
    out = io.BytesIO()
    sticker.save(out, "WEBP", lossless=True)
    return out.getvalue()
