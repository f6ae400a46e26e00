"""The safety setting: a model's own safety checker blacks out the pictures it flags.

The tiny model gets a tiny random safety checker (diffusers' StableDiffusionSafetyChecker and a
CLIP image processor, saved in the folder as Stable Diffusion 1.x ships them), whose
thresholds make it flag every picture or none.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from transformers import CLIPConfig, CLIPImageProcessor

from engine.model import load_model
from engine.safety import has_safety_checker


def with_safety_checker(tiny_model_dir: Path, folder: Path, threshold: float) -> Path:
    """A copy of the tiny model with a safety checker that flags a picture when any cosine
    similarity exceeds `threshold` (-2: every picture; 2: none)."""
    shutil.copytree(tiny_model_dir, folder)
    config = CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=8)
    torch.manual_seed(0)
    checker = StableDiffusionSafetyChecker(config)
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(threshold)
    checker.save_pretrained(folder / "safety_checker")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
                       ).save_pretrained(folder / "feature_extractor")
    index = json.loads((folder / "model_index.json").read_text())
    index["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    index["feature_extractor"] = ["transformers", "CLIPImageProcessor"]
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def decoded(model) -> np.ndarray:
    torch.manual_seed(1)
    side = model.image_size // model.vae_scale
    latents = torch.randn(1, 4, side, side)
    return np.asarray(model.decode(latents)[0])


def test_flagged_pictures_are_blacked_out_when_the_setting_is_on(tiny_model_dir, tmp_path):
    strict = with_safety_checker(tiny_model_dir, tmp_path / "strict", threshold=-2.0)
    assert has_safety_checker(str(strict)) and not has_safety_checker(str(tiny_model_dir))
    on = load_model(strict, "cpu", safety=True)
    assert on.safety is not None
    assert not decoded(on).any()  # black
    assert on.safety.flagged == 1
    off = load_model(strict, "cpu", safety=False)
    assert off.safety is None and decoded(off).any()


def test_pictures_the_checker_passes_are_unchanged(tiny_model_dir, tmp_path):
    lenient = with_safety_checker(tiny_model_dir, tmp_path / "lenient", threshold=2.0)
    checked = load_model(lenient, "cpu", safety=True)
    assert checked.safety is not None
    assert np.array_equal(decoded(checked), decoded(load_model(lenient, "cpu")))
    assert checked.safety.flagged == 0


def test_a_model_without_a_checker_says_so(tiny_model_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="engine.model"):
        model = load_model(tiny_model_dir, "cpu", safety=True)
    assert model.safety is None
    assert "has none: pictures are not checked" in caplog.text


def test_a_named_checker_that_cannot_be_read_is_an_error(tiny_model_dir, tmp_path):
    from engine.errors import ModelLoadError

    broken = with_safety_checker(tiny_model_dir, tmp_path / "broken", threshold=2.0)
    shutil.rmtree(broken / "safety_checker")
    (broken / "safety_checker").mkdir()
    with pytest.raises(ModelLoadError, match="safety checker"):
        load_model(broken, "cpu", safety=True)
