"""What a model may tell the engine about a picture: a caption, and where a photo's subject is.

A model folder may ship a captioner: a program that reads a picture of the model's own world.
The engine never imports one; the folder names it in `captioner.json`, e.g.

    {"factory": "some.package.module:function", "folder": "captioner"}

and `load_captioner` imports the module with importlib and calls `function(model_folder /
folder)`, which returns an object with the `Captioner` methods. Real Stable Diffusion folders
ship none: there the user describes the photo, and learning falls back to model-agnostic
captions and masks (see engine/textual_inversion.py).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from engine.errors import ModelLoadError

CAPTIONER_FILE = "captioner.json"
PLACEHOLDER = "{}"  # where a subject caption puts the new word


@dataclass(frozen=True)
class Subject:
    """A photo's caption with the new word in its subject's place, and where the subject is.

    `caption` holds PLACEHOLDER once, e.g. "a big {} in the center with sky background", or
    "a big red circle on the left with grass background in {} style" for a style. `mask` is
    (H, W) in [0, 1] at the photo's resolution, 1 on the subject; None means the whole picture.
    `words` describe the subject itself as fully as the model's words can, e.g. "teal wideeyed
    pointyeared gaping spotted creature": learning starts the new word there (None: no such
    words).
    """

    caption: str
    mask: np.ndarray | None = None
    words: str | None = None

    def __post_init__(self) -> None:
        if self.caption.count(PLACEHOLDER) != 1:
            raise ValueError(f"a subject caption needs one {PLACEHOLDER!r}: {self.caption!r}")


@runtime_checkable
class Captioner(Protocol):
    """What a model's captioner supplies."""

    def caption(self, image: Image.Image) -> str:
        """The picture's caption in the model's own words (an edit's source prompt)."""

    def subject(self, image: Image.Image, kind: str) -> Subject | None:
        """The caption of a sample photo of a concept of `kind` ("object", "person", "style")
        with the new word in the subject's place, the subject's mask and its own words; None
        when the photo shows no subject the captioner can find."""


def load_captioner(source: str | Path | None) -> Captioner | None:
    """The captioner a model folder names in captioner.json, else None (a hub id, a real SD
    folder). A folder that names one that cannot be loaded raises ModelLoadError."""
    folder = Path(str(source)) if source else None
    spec_file = folder / CAPTIONER_FILE if folder is not None else None
    if spec_file is None or not spec_file.is_file():
        return None
    try:
        spec = json.loads(spec_file.read_text())
        module_name, _, attribute = spec["factory"].partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
        captioner = factory(folder / spec.get("folder", "."))
    except (OSError, ValueError, KeyError, AttributeError, ImportError, TypeError) as exc:
        raise ModelLoadError(
            f"the model's captioner ({spec_file}) cannot be loaded: {exc}") from exc
    if not isinstance(captioner, Captioner):
        raise ModelLoadError(f"{spec['factory']} did not give a captioner")
    return captioner
