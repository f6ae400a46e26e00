"""Stickers: the photo's subject cut out, cropped to it, outlined in white, at Telegram's size.

The subject's mask comes from a segmenter (engine/segmentation.py) when the model has one;
otherwise from where the caption's subject words attend while the photo is DDIM-inverted, so
any object the model can name can still be cut out. The sticker is then cropped to the subject
with a margin and scaled so that its longer side is exactly 512 px (Telegram's rule).
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
from engine.segmentation import Segmenter, subject_mask

STICKER_SIDE = 512
OUTLINE = 10  # px of white around the subject, at the sticker's size
MAX_STICKER_BYTES = 512 * 1024
MARGIN = 0.06  # room around the subject's box, as a share of its longer side (outline inside)
# English words that never name the thing to cut out: articles, prepositions, places, sizes.
NOT_SUBJECTS = {"a", "an", "the", "of", "on", "in", "with", "and", "at", "to", "photo",
                "picture", "image", "background", "style", "left", "right", "center", "big",
                "small", "is", "are"}
# A word just before one of these describes the setting or the look, not a subject
# ("with a beach background", "in watercolour style"), whatever the model's vocabulary.
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


def cut_out(model: DiffusionModel, image: Image.Image, caption: str | None = None,
            segmenter: Segmenter | None = None, words: list[str] | None = None,
            steps: int = 20) -> tuple[Image.Image, np.ndarray]:
    """The photo at 512x512 and its subject's mask there, (512, 512) in [0, 1].

    With a segmenter the caption is not needed; without one the mask is where the subject
    `words` (default: the caption's nouns) attend, and a caption naming no subject raises
    PromptError."""
    photo = fit_square(image, STICKER_SIDE)
    if segmenter is not None:
        return photo, subject_mask(segmenter, photo)
    if not caption:
        raise PromptError("I can't tell what to cut out: tell me what the photo shows")
    words = words or subject_words(caption)
    spans = token_spans(model.tokenizer, caption)
    positions = [p for w in words for p in spans.positions(w)]
    if not positions:
        raise PromptError("I can't tell what to cut out: the caption names no subject")
    maps = cross_attention_maps(model, image, caption, steps)
    return photo, word_mask(maps, positions, STICKER_SIDE)


def make_sticker(model: DiffusionModel, image: Image.Image, caption: str | None = None,
                 words: list[str] | None = None, steps: int = 20,
                 segmenter: Segmenter | None = None) -> Image.Image:
    """An RGBA sticker of the photo's subject: cut out (`cut_out`), cropped to the subject,
    one side exactly 512 px, with a white outline."""
    photo, alpha = cut_out(model, image, caption, segmenter, words, steps)
    return framed(photo, alpha)


def subject_box(alpha: np.ndarray, margin: float = MARGIN) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of where `alpha` is over one half, grown by `margin` of the
    box's longer side plus the outline, clipped to the picture; the whole picture when the
    mask is empty."""
    height, width = alpha.shape
    rows, cols = np.nonzero(alpha > 0.5)
    if rows.size == 0:
        return 0, 0, width, height
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    grow = int(round(margin * max(bottom - top, right - left))) + OUTLINE
    return (max(0, left - grow), max(0, top - grow), min(width, right + grow),
            min(height, bottom + grow))


def framed(photo: Image.Image, alpha: np.ndarray) -> Image.Image:
    """The subject cropped out of `photo` with a margin, scaled so that its longer side is
    STICKER_SIDE, on a white outline and transparent elsewhere."""
    left, top, right, bottom = subject_box(alpha)
    crop = photo.crop((left, top, right, bottom))
    mask = Image.fromarray((np.clip(alpha, 0, 1) * 255).astype(np.uint8)).crop(
        (left, top, right, bottom))
    scale = STICKER_SIDE / max(crop.size)
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    size = tuple(STICKER_SIDE if s == max(size) else s for s in size)
    crop, mask = crop.resize(size, Image.LANCZOS), mask.resize(size, Image.BILINEAR)
    alpha = np.asarray(mask, np.float32) / 255
    return outlined(crop.convert("RGBA"), alpha)


def outlined(photo: Image.Image, alpha: np.ndarray, border: int = OUTLINE) -> Image.Image:
    """The photo where `alpha` is, on a white outline, transparent elsewhere."""
    mask = Image.fromarray((alpha * 255).astype(np.uint8))
    outline = mask.filter(ImageFilter.MaxFilter(2 * (border // 2) + 1)).filter(
        ImageFilter.GaussianBlur(1))
    sticker = Image.new("RGBA", photo.size, (255, 255, 255, 0))
    sticker.paste(Image.new("RGBA", photo.size, (255, 255, 255, 255)), mask=outline)
    sticker.paste(photo, mask=mask)
    return sticker


def sticker_webp(sticker: Image.Image) -> bytes:
    """Telegram's static sticker format: WEBP with one side exactly 512 px (the longer one)."""
    if max(sticker.size) != STICKER_SIDE:
        scale = STICKER_SIDE / max(sticker.size)
        sticker = sticker.resize(tuple(STICKER_SIDE if s == max(sticker.size)
                                       else max(1, round(s * scale)) for s in sticker.size),
                                 Image.LANCZOS)
    out = io.BytesIO()
    sticker.save(out, "WEBP", lossless=True)
    for quality in (90, 80, 65, 50):  # Telegram takes static stickers of at most 512 KB
        if out.tell() <= MAX_STICKER_BYTES:
            break
        out = io.BytesIO()
        sticker.save(out, "WEBP", quality=quality, exact=True)
    return out.getvalue()
