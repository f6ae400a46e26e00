"""A model's own safety checker: pictures it flags are replaced by black ones.

Stable Diffusion 1.x folders ship one (diffusers' StableDiffusionSafetyChecker with its CLIP
image processor, in the folder's ``safety_checker`` and ``feature_extractor`` parts); many other
models, the bundled one included, have none. Loaded on request only (it costs memory and time
on every picture), and applied where the model turns latents into pictures
(:meth:`engine.model.DiffusionModel.decode`), so every picture the engine makes passes it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.errors import ModelLoadError

log = logging.getLogger(__name__)
_PARTS = ("safety_checker", "feature_extractor")


class SafetyChecker:
    """Runs a model's safety classifier on pictures and blacks out the flagged ones."""

    def __init__(self, classifier: torch.nn.Module, processor, device: torch.device) -> None:
        self.classifier = classifier.to(device).eval()
        self.processor = processor
        self.device = device
        self.flagged = 0  # pictures replaced so far

    @torch.no_grad()
    def __call__(self, images: list[Image.Image]) -> list[Image.Image]:
        """The pictures, each flagged one replaced by a black picture of its size."""
        if not images:
            return images
        pixels = self.processor(images, return_tensors="pt").pixel_values
        dtype = next(self.classifier.parameters()).dtype
        arrays = [np.asarray(image.convert("RGB"), dtype=np.float32) / 255 for image in images]
        _, flags = self.classifier(clip_input=pixels.to(self.device, dtype), images=arrays)
        checked = []
        for image, flagged in zip(images, flags, strict=True):
            if flagged:
                self.flagged += 1
                log.warning("the safety checker flagged a picture; a black one replaces it")
                image = Image.new("RGB", image.size, "black")
            checked.append(image)
        return checked


def has_safety_checker(source: str) -> bool | None:
    """Whether a local model folder names a safety checker (None: not a local folder)."""
    index = Path(source) / "model_index.json"
    if not index.is_file():
        return None
    try:
        parts = json.loads(index.read_text())
    except (OSError, ValueError):
        return False
    return all(isinstance(parts.get(p), list) and None not in parts[p] for p in _PARTS)


def load_safety_checker(source: str, device: torch.device) -> SafetyChecker | None:
    """The model's safety checker, or None when the model has none. Raises ModelLoadError
    when it names one that cannot be read."""
    local = Path(source).is_dir()
    if local and not has_safety_checker(source):
        return None
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker,
    )
    from transformers import CLIPImageProcessor

    try:
        classifier = StableDiffusionSafetyChecker.from_pretrained(
            source, subfolder="safety_checker", local_files_only=local)
        processor = CLIPImageProcessor.from_pretrained(source, subfolder="feature_extractor",
                                                       local_files_only=local)
    except (OSError, ValueError) as exc:
        if not local:  # a hub model without the parts: it has no safety checker
            return None
        raise ModelLoadError(f"cannot load the safety checker of {source!r}: {exc}") from exc
    return SafetyChecker(classifier, processor, device)
