"""The subject segmenter behind stickers: the bundled world's network and a transformers model."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import ImageError, ModelLoadError
from engine.model import BUNDLED_MODEL
from engine.segmentation import (
    SEGMENTER_FILE,
    Segmenter,
    TransformersSegmenter,
    load_segmenter,
    subject_mask,
)
from engine.stickers import STICKER_SIDE, make_sticker, sticker_webp
from world.checker import split_scene
from world.render import render, union_mask
from world.scene import random_scene


def tiny_segformer(folder, subject_bias: float):
    """A random tiny SegFormer (background + 2 classes) whose classifier only sees its bias:
    positive `subject_bias` makes every pixel a subject class, negative makes it background."""
    from transformers import (
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessor,
    )

    torch.manual_seed(0)
    config = SegformerConfig(
        num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
        hidden_sizes=[8, 16], patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2],
        mlp_ratios=[2, 2], decoder_hidden_size=16,
        id2label={0: "background", 1: "person", 2: "cat"},
        label2id={"background": 0, "person": 1, "cat": 2})
    model = SegformerForSemanticSegmentation(config)
    with torch.no_grad():
        model.decode_head.classifier.weight.zero_()
        model.decode_head.classifier.bias.copy_(torch.tensor([-subject_bias, subject_bias, 0.0]))
    model.save_pretrained(folder)
    SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def test_transformers_segmenter_reads_its_background_class(tmp_path):
    photo = render(random_scene(random.Random(3)), 96).image.resize((120, 90))
    subject = load_segmenter(None, str(tiny_segformer(tmp_path / "on", 5.0)))
    assert isinstance(subject, TransformersSegmenter) and isinstance(subject, Segmenter)
    mask = subject_mask(subject, photo)
    assert mask.shape == (90, 120) and mask.min() > 0.9  # every pixel a subject class
    background = load_segmenter(None, str(tiny_segformer(tmp_path / "off", -5.0)))
    assert background.mask(photo).max() < 0.1
    with pytest.raises(ImageError, match="subject"):
        subject_mask(background, photo)


def test_segmenter_setting_errors_and_off(tmp_path):
    with pytest.raises(ModelLoadError, match="image-segmentation"):
        load_segmenter(None, str(tmp_path))  # a folder without a model
    assert load_segmenter(BUNDLED_MODEL, "none") is None
    assert load_segmenter(tmp_path, "") is None  # no segmenter.json: the attention fallback
    (tmp_path / SEGMENTER_FILE).write_text(json.dumps({"factory": "no.such:load"}))
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        load_segmenter(tmp_path, "")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_bundled_segmenter_finds_the_objects_of_unseen_scenes():
    segmenter = load_segmenter(BUNDLED_MODEL)
    assert segmenter is not None
    scores = []
    for index in range(20):
        rendering = render(split_scene("eval", 1000 + index), 128)
        truth = union_mask(rendering.masks, 128) > 0.5
        scores.append(iou(subject_mask(segmenter, rendering.image) > 0.5, truth))
    assert np.mean(scores) > 0.8, scores


def test_sticker_is_cropped_to_the_subject_with_one_side_512(tiny_model):
    segmenter = load_segmenter(BUNDLED_MODEL)
    scene = split_scene("eval", 7)
    sticker = make_sticker(tiny_model, render(scene, 256).image, segmenter=segmenter)
    assert max(sticker.size) == STICKER_SIDE and sticker.mode == "RGBA"
    alpha = np.asarray(sticker.getchannel("A")) > 127
    # cropped: the subject fills the sticker instead of a blob on an empty canvas
    truth_share = (union_mask(render(scene, 256).masks, 256) > 0.5).mean()
    assert alpha.mean() > truth_share and alpha.mean() > 0.3
    assert not alpha[0, 0] and not alpha[-1, -1]  # transparent corners: a cut-out
    rgb = np.asarray(sticker.convert("RGB"), np.int32)
    white = (rgb[alpha].min(axis=1) > 240).mean()
    assert white > 0.02  # the white outline
    decoded = Image.open(io.BytesIO(sticker_webp(sticker)))
    assert decoded.format == "WEBP" and max(decoded.size) == STICKER_SIDE


def test_a_busy_sticker_still_fits_telegrams_512_kb():
    noise = np.random.default_rng(0).integers(0, 256, (512, 400, 4), dtype=np.uint8)
    data = sticker_webp(Image.fromarray(noise, "RGBA"))
    assert len(data) <= 512 * 1024
    assert Image.open(io.BytesIO(data)).size == (400, 512)
