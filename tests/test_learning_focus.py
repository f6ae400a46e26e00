"""Learning that isolates the thing: per-photo captions, the subject-focused loss, the captioner
a model folder names, on the tiny random SD model (no captioner of its own) and fake captioners.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from PIL import Image, ImageDraw

from engine.captioning import PLACEHOLDER, Subject, load_captioner
from engine.config import ConceptSettings
from engine.errors import ModelLoadError
from engine.textual_inversion import (
    ATTENTION_FLOOR,
    OBJECT_TEMPLATES,
    CaptionChoices,
    Draws,
    focused_loss,
    learn_concept,
    template_ids,
    training_set,
)

FAST = ConceptSettings(steps=6, learning_rate=0.05, batch_size=2, vectors=2, augment=2,
                       early_stop_window=0)
CAPTION = "a big {} on the left with sky background"



class LeftHalf:
    """A captioner that finds the subject in each picture's left half."""

    def __init__(self):
        self.seen = 0

    def caption(self, image: Image.Image) -> str:
        return "a big red circle on the left with sky background"

    def subject(self, image: Image.Image, kind: str) -> Subject | None:
        self.seen += 1
        if kind == "style":
            return Subject(f"a big red circle on the left with sky background in {PLACEHOLDER} "
                           "style")
        mask = np.zeros((image.height, image.width), np.float32)
        mask[:, : image.width // 2] = 1
        return Subject(CAPTION, mask)


def make_left_half(folder) -> LeftHalf:
    """The factory a test model folder's captioner.json names."""
    return LeftHalf()


def photos() -> list[Image.Image]:
    images = []
    for shift in (-2, 0, 2):
        image = Image.new("RGB", (32, 32), (120, 185, 245))
        ImageDraw.Draw(image).ellipse((2 + shift, 8, 14 + shift, 20), fill=(220, 40, 40))
        images.append(image)
    return images


def gradient(model, data, draws, ids, slots, vectors, perturb=None) -> torch.Tensor:
    """d loss / d vectors, with `perturb` (B, C, h, w) added to the UNet's prediction."""
    vectors = vectors.clone().requires_grad_(True)

    def shift(module, inputs, output):
        output.sample = output.sample + perturb
        return output

    handle = model.unet.register_forward_hook(shift) if perturb is not None else None
    try:
        focused_loss(model, DDIMScheduler.from_config(model.scheduler.config), data, draws, ids,
                     slots, vectors).backward()
    finally:
        if handle is not None:
            handle.remove()
    return vectors.grad


def setup(model, kind: str, captioner):
    data = training_set(model, photos(), kind, FAST, captioner)
    texts = sorted({c for captions in data.captions for c in captions})
    ids, slots = template_ids(model, texts, 2)
    choices = CaptionChoices.of(data, texts, 0.0)
    draws = Draws.random(data, choices, DDIMScheduler.from_config(model.scheduler.config), 3,
                         torch.Generator().manual_seed(5))
    vectors = torch.randn(2, model.text_width, generator=torch.Generator().manual_seed(1))
    return data, draws, ids, slots, vectors


def test_each_view_is_captioned_with_the_word_in_the_subjects_place(tiny_model):
    captioner = LeftHalf()
    data = training_set(tiny_model, photos(), "object", FAST, captioner)
    assert captioner.seen == 6  # every view (photo and mirror) of every photo, one by one
    assert data.captions == [(CAPTION,)] * 6 and data.focus == "subject masks"
    side = tiny_model.unet.config.sample_size
    assert data.masks.shape == (6, side, side) and bool(data.has_mask.all())
    assert data.masks[:, :, : side // 2].eq(1).all() and data.masks[:, :, side // 2:].eq(0).all()

    style = training_set(tiny_model, photos(), "style", FAST, LeftHalf())
    assert style.focus == "whole picture" and style.masks is None
    assert all(c[0].endswith("background in {} style") for c in style.captions)


def test_without_a_captioner_the_templates_carry_the_users_description(tiny_model):
    data = training_set(tiny_model, photos(), "object", FAST, None,
                        ["with sky background", None, ""])
    assert data.focus == "word attention" and data.masks is None
    assert data.captions[0] == tuple(f"{t} with sky background" for t in OBJECT_TEMPLATES)
    assert data.captions[2] == data.captions[4] == OBJECT_TEMPLATES
    assert all(PLACEHOLDER in c for captions in data.captions for c in captions)
    style = training_set(tiny_model, photos(), "style", FAST, None, ["a red circle"] * 3)
    assert style.captions[0][0] == "a red circle in {} style" and style.focus == "whole picture"


def test_errors_outside_the_subject_mask_do_not_move_the_vectors(tiny_model):
    data, draws, ids, slots, vectors = setup(tiny_model, "object", LeftHalf())
    side = tiny_model.unet.config.sample_size
    outside = torch.zeros(3, 4, side, side)
    outside[..., side // 2:] = 5.0
    base = gradient(tiny_model, data, draws, ids, slots, vectors)
    assert base.abs().sum() > 0
    torch.testing.assert_close(gradient(tiny_model, data, draws, ids, slots, vectors, outside),
                               base)
    inside = outside.flip(-1)
    assert not torch.allclose(gradient(tiny_model, data, draws, ids, slots, vectors, inside), base)


def test_a_style_learns_from_the_whole_picture(tiny_model):
    data, draws, ids, slots, vectors = setup(tiny_model, "style", LeftHalf())
    side = tiny_model.unet.config.sample_size
    outside = torch.zeros(3, 4, side, side)
    outside[..., side // 2:] = 5.0
    base = gradient(tiny_model, data, draws, ids, slots, vectors)
    assert not torch.allclose(gradient(tiny_model, data, draws, ids, slots, vectors, outside),
                              base)


def test_without_masks_the_words_own_attention_weights_the_loss(tiny_model, monkeypatch):
    data, draws, ids, slots, vectors = setup(tiny_model, "object", None)
    seen = []
    import engine.textual_inversion as ti

    real = ti.attention_focus

    def spy(store, slots_, side):
        weights = real(store, slots_, side)
        seen.append(weights)
        return weights

    monkeypatch.setattr(ti, "attention_focus", spy)
    gradient(tiny_model, data, draws, ids, slots, vectors)
    (weights,) = seen
    side = tiny_model.unet.config.sample_size
    assert weights.shape == (3, side, side) and not weights.requires_grad
    assert weights.min() >= ATTENTION_FLOOR - 1e-6 and torch.allclose(
        weights.flatten(1).amax(1), torch.ones(3))
    assert weights.std() > 0.01  # it is a map, not a constant


def test_a_style_draws_only_the_noisiest_timesteps_and_an_object_all(tiny_model, monkeypatch):
    import engine.textual_inversion as ti

    real = ti.Draws.random.__func__
    drawn: list[torch.Tensor] = []

    def spy(cls, *args, **kwargs):
        draws = real(cls, *args, **kwargs)
        drawn.append(draws.steps)
        return draws

    monkeypatch.setattr(ti.Draws, "random", classmethod(spy))
    settings = replace(FAST, steps=12)
    steps_of = {}
    for kind in ("style", "object"):
        drawn.clear()
        learn_concept(tiny_model, photos(), "ball", kind, settings=settings)
        steps_of[kind] = torch.cat(drawn)
    total = tiny_model.scheduler.config.num_train_timesteps
    first = round(settings.style_timesteps_from * total)
    assert steps_of["style"].min() >= first and steps_of["style"].max() < total
    assert steps_of["object"].min() < first


def test_learning_with_a_captioner_reports_its_focus_and_preview_caption(tiny_model):
    result = learn_concept(tiny_model, photos(), "ball", settings=FAST, captioner=LeftHalf())
    assert result.focus == "subject masks" and result.preview_caption == CAPTION
    plain = learn_concept(tiny_model, photos(), "ball", settings=FAST)
    assert plain.focus == "word attention" and plain.preview_caption is None
    assert not torch.equal(result.concept.vectors, plain.concept.vectors)
    with pytest.raises(ValueError, match="one description"):
        learn_concept(tiny_model, photos(), "ball", settings=FAST, descriptions=["x"])


def test_learning_stops_when_the_probe_levels_off_and_keeps_the_best(tiny_model):
    settings = replace(FAST, steps=200, early_stop_window=4, check_every=2,
                       early_stop_tolerance=0.5)
    result = learn_concept(tiny_model, photos(), "ball", settings=settings)
    assert result.reason == "levelled off" and result.steps < 200


def test_a_model_folder_names_its_captioner(tmp_path):
    assert load_captioner(tmp_path) is None
    assert load_captioner(None) is None and load_captioner("org/some-hub-model") is None
    spec = {"factory": f"{__name__}:make_left_half", "folder": "captioner"}
    (tmp_path / "captioner.json").write_text(json.dumps(spec))
    captioner = load_captioner(tmp_path)
    assert isinstance(captioner, LeftHalf)
    (tmp_path / "captioner.json").write_text(json.dumps({"factory": "no.such.module:x"}))
    with pytest.raises(ModelLoadError, match="captioner"):
        load_captioner(tmp_path)
    (tmp_path / "captioner.json").write_text(json.dumps({"factory": "json:dumps"}))
    with pytest.raises(ModelLoadError, match="captioner"):
        load_captioner(tmp_path)
