"""Where a picture's subject is, pixel by pixel: the segmenter behind stickers and packs.

One small interface, two kinds of model behind it:
- a model folder may ship its own segmenter, named in `segmenter.json` the way a captioner is
  named in `captioner.json` (engine/captioning.py):

      {"factory": "some.package.module:function", "folder": "segmenter"}

  the engine imports the module with importlib and never knows what it is;
- for real photos, an image-segmentation model that `transformers` loads by id or folder (the
  `segmenter` setting): a semantic-segmentation model whose non-background classes are the
  subject, or a one-channel matting model whose logit says "subject here".

Without either, stickers fall back to the subject words' cross-attention (engine/stickers.py).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from engine.errors import ImageError, ModelLoadError

SEGMENTER_FILE = "segmenter.json"
BACKGROUND_LABELS = ("background", "bg", "__background__", "unlabeled", "void")


@runtime_checkable
class Segmenter(Protocol):
    """What a subject segmenter supplies."""

    def mask(self, image: Image.Image) -> np.ndarray:
        """(H, W) float in [0, 1] at the picture's own size, 1 where its subject is."""


class TransformersSegmenter:
    """A `transformers` image-segmentation model as a Segmenter.

    Several classes: every pixel whose likeliest class is not a background class is subject
    (a label named "background" or the like, else class 0). One channel: a matte's logit.
    """

    def __init__(self, model: torch.nn.Module, processor: object | None):
        self.model = model.eval()
        self.processor = processor
        labels = getattr(model.config, "id2label", None) or {}
        named = [int(i) for i, name in labels.items()
                 if str(name).strip().lower() in BACKGROUND_LABELS]
        self.background = named or [0]

    @torch.no_grad()
    def mask(self, image: Image.Image) -> np.ndarray:
        """The subject's probability per pixel, upsampled to the picture's size."""
        image = image.convert("RGB")
        pixels = self._pixels(image)
        logits = self.model(pixel_values=pixels).logits
        if isinstance(logits, (list, tuple)):
            logits = logits[0]
        logits = logits.float()
        if logits.dim() == 3:
            logits = logits[:, None]
        logits = torch.nn.functional.interpolate(
            logits, size=(image.height, image.width), mode="bilinear", align_corners=False)
        if logits.shape[1] == 1:
            subject = torch.sigmoid(logits[0, 0])
        else:
            subject = 1 - logits[0].softmax(0)[self.background].sum(0)
        return subject.clamp(0, 1).numpy().astype(np.float32)

    def _pixels(self, image: Image.Image) -> torch.Tensor:
        if self.processor is not None:
            return self.processor(images=image, return_tensors="pt")["pixel_values"]
        size = int(getattr(self.model.config, "image_size", 512) or 512)
        arr = np.asarray(image.resize((size, size), Image.BICUBIC), np.float32) / 127.5 - 1
        return torch.from_numpy(arr).permute(2, 0, 1)[None]


def load_transformers_segmenter(source: str) -> TransformersSegmenter:
    """An image-segmentation model by `transformers` id or folder (a folder is read offline).
    A model that cannot be loaded raises ModelLoadError."""
    from transformers import (
        AutoImageProcessor,
        AutoModelForImageSegmentation,
        AutoModelForSemanticSegmentation,
    )

    local = Path(source).is_dir()
    model = None
    errors = []
    for auto in (AutoModelForSemanticSegmentation, AutoModelForImageSegmentation):
        try:
            model = auto.from_pretrained(source, local_files_only=local)
            break
        except (OSError, ValueError, KeyError) as exc:
            errors.append(str(exc).splitlines()[0])
    if model is None:
        raise ModelLoadError(f"cannot load an image-segmentation model from {source!r}: "
                             + "; ".join(errors))
    try:
        processor = AutoImageProcessor.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError, KeyError):
        processor = None
    return TransformersSegmenter(model, processor)


def load_folder_segmenter(folder: Path) -> Segmenter | None:
    """The segmenter a model folder names in segmenter.json, else None. A folder that names
    one that cannot be loaded raises ModelLoadError."""
    spec_file = folder / SEGMENTER_FILE
    if not spec_file.is_file():
        return None
    try:
        spec = json.loads(spec_file.read_text())
        module_name, _, attribute = spec["factory"].partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
        segmenter = factory(folder / spec.get("folder", "."))
    except (OSError, ValueError, KeyError, AttributeError, ImportError, TypeError,
            RuntimeError) as exc:
        raise ModelLoadError(
            f"the model's segmenter ({spec_file}) cannot be loaded: {exc}") from exc
    if not isinstance(segmenter, Segmenter):
        raise ModelLoadError(f"{spec['factory']} did not give a segmenter")
    return segmenter


def load_segmenter(model_source: str | Path | None, setting: str = "") -> Segmenter | None:
    """The segmenter to use beside a diffusion model: the `segmenter` setting's model when one
    is set ("none" turns segmentation off), else the model folder's own, else None (stickers
    then cut along the attention)."""
    if setting.strip().lower() == "none":
        return None
    if setting.strip():
        return load_transformers_segmenter(setting.strip())
    folder = Path(str(model_source)) if model_source else None
    if folder is None or not folder.is_dir():
        return None
    return load_folder_segmenter(folder)


def subject_mask(segmenter: Segmenter, image: Image.Image) -> np.ndarray:
    """The segmenter's mask of a picture, checked: (H, W) in [0, 1] at the picture's size.
    A picture in which it finds no subject raises ImageError (nothing to cut out)."""
    mask = np.clip(np.asarray(segmenter.mask(image), np.float32), 0, 1)
    if mask.shape != (image.height, image.width):
        raise ModelLoadError(f"the segmenter gave a {mask.shape} mask for a "
                             f"{image.width}x{image.height} picture")
    if (mask > 0.5).sum() < 0.001 * mask.size:
        raise ImageError("I can't find a subject to cut out in this picture")
    return mask
