"""Stickers cut out along cross-attention, in Telegram's format."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image

from engine.errors import PromptError
from engine.stickers import make_sticker, sticker_webp, subject_words
from world.render import render
from world.scene import random_scene

CAPTION = "a big red circle on the left with grass background"


def test_subject_words_skip_places_and_backgrounds():
    assert subject_words(CAPTION) == ["red", "circle"]
    assert subject_words("a man with a dog on the beach with mountains background in oil "
                         "style") == ["man", "dog", "beach"]


def test_sticker_is_a_512_webp_with_transparency(tiny_model):
    photo = render(random_scene(random.Random(2)), size=32).image
    sticker = make_sticker(tiny_model, photo, CAPTION, steps=5)
    assert sticker.size == (512, 512) and sticker.mode == "RGBA"
    alpha = np.asarray(sticker.getchannel("A"))
    assert alpha.min() == 0 and alpha.max() == 255  # a cut-out, not the whole photo
    decoded = Image.open(io.BytesIO(sticker_webp(sticker)))
    assert decoded.format == "WEBP" and 512 in decoded.size


def test_sticker_needs_a_subject(tiny_model):
    photo = render(random_scene(random.Random(2)), size=32).image
    with pytest.raises(PromptError, match="cut out"):
        make_sticker(tiny_model, photo, "a picture with grass background", steps=3)
