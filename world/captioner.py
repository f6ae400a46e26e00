"""Captions for sticker-world images, and the engine's captioner hook.

A caption is the canonical sentence of the grammar (`scene.caption` without an rng): objects
left to right, each with size, colour, kind and position, then the background, then the style
only when it is one captions name. It is built from the checker's Reading of the image, so the
bundled model can caption its own pictures: the engine uses that to pre-fill the source prompt
of an edit. Real Stable Diffusion models ship no captioner; there the user types the caption.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from world.checker import Checker, Reading
from world.scene import caption

CAPTIONER_FOLDER = "captioner"  # subfolder of a model folder holding a checker


def caption_from_reading(reading: Reading) -> str:
    """The canonical caption of what a Reading describes."""
    return caption(reading.to_scene())


def caption_image(checker: Checker, image: Image.Image) -> str:
    """Read one image with the checker and caption it in the grammar."""
    return caption_from_reading(checker.read([image])[0])


def captioner_for(model: object) -> Callable[[Image.Image], str] | None:
    """A function image -> caption for a model whose folder has a `captioner/` subfolder, else None.

    `model` is anything with a `source` (the engine's DiffusionModel): a local folder or a hub id.
    The checker is loaded on each call of this function and kept only by the returned closure.
    """
    source = getattr(model, "source", None)
    folder = Path(str(source)) / CAPTIONER_FOLDER if source else None
    if folder is None or not folder.is_dir():
        return None
    checker = Checker.load(folder)

    def captioner(image: Image.Image) -> str:
        return caption_image(checker, image)

    return captioner
