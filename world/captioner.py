"""Captions for sticker-world images: the bundled model's captioner (engine/captioning.py).

A caption is the canonical sentence of the grammar (`scene.caption` without an rng): objects
left to right, each with size, colour, kind and position, then the background, then the style
only when it is one captions name. It is built from the checker's Reading of the image, so the
bundled model can caption its own pictures: the engine uses that to pre-fill the source prompt
of an edit, and learning uses `WorldCaptioner.subject` to caption each sample photo with the
new word in its subject's place and to mask the subject. The model folder names `load` in its
captioner.json, beside the world's caption grammar (world/caption_grammar.py).
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from engine.captioning import CAPTIONER_FILE, PLACEHOLDER, Subject
from oneword.grammar import Position
from world.caption_grammar import WorldCaptionGrammar
from world.checker import Checker, ObjectReading, Reading
from world.scene import (
    FINE_STYLES,
    NAMED_STYLES,
    POSITIONS,
    SIZES,
    Scene,
    caption,
    full_description,
    random_object,
)

CAPTIONER_FOLDER = "captioner"  # subfolder of a model folder holding a checker
NAMEABLE_STYLES = NAMED_STYLES + FINE_STYLES  # styles some caption of the model has named


def write_captioner_spec(model_folder: Path) -> Path:
    """Name this captioner and the world's caption grammar in a model folder's captioner.json
    (engine/captioning.py reads it)."""
    path = Path(model_folder) / CAPTIONER_FILE
    path.write_text(json.dumps({"factory": f"{__name__}:load", "folder": CAPTIONER_FOLDER,
                                "grammar": f"{WorldCaptionGrammar.__module__}:"
                                           f"{WorldCaptionGrammar.__name__}"}) + "\n")
    return path


def caption_from_reading(reading: Reading) -> str:
    """The canonical caption of what a Reading describes."""
    return caption(reading.to_scene())


def caption_image(checker: Checker, image: Image.Image) -> str:
    """Read one image with the checker and caption it in the grammar."""
    return caption_from_reading(checker.read([image])[0])


def add_contexts(scene: Scene, position: str, size: str, text: str) -> tuple[str, ...]:
    """The subject at `position` worded as an add words a new thing, with no size and after
    the things already there: alone (`text`, its canonical caption, without the size word),
    and beside another shape at each place the scene leaves free. The other shapes come from
    a fixed seed, so a photo's contexts never change."""
    rng = random.Random(f"{scene.background}/{position}")
    grammar = WorldCaptionGrammar()
    others = tuple(o for o in scene.objects if o.position != position)
    contexts = [text.replace(f"a {size} {PLACEHOLDER}", f"a {PLACEHOLDER}", 1)]
    for free in POSITIONS:
        if free == position or scene.object_at(free) is not None:
            continue
        shape = random_object(rng, free, allow_characters=False)
        beside = replace(scene, objects=tuple(sorted(others + (shape,),
                                                     key=lambda o: POSITIONS[o.position])))
        added = grammar.with_added(caption(beside), PLACEHOLDER, Position(position))
        if added is not None:
            contexts.append(added)
    return tuple(dict.fromkeys(c for c in contexts if c != text))


# How far a subject's box reaches beyond its nominal radius: the renderer jitters objects by up
# to 3% of the width sideways, 6% of the height up or down and 10% in scale.
BOX_MARGIN = (0.05, 0.08)
BOX_SCALE = 1.2


class WorldCaptioner:
    """The bundled model's captioner: the checker reads a picture, the grammar words it."""

    def __init__(self, checker: Checker):
        self.checker = checker

    def caption(self, image: Image.Image) -> str:
        """The picture's canonical caption."""
        return caption_image(self.checker, image)

    __call__ = caption

    def subject(self, image: Image.Image, kind: str) -> Subject | None:
        """The photo's caption with the new word in the subject's place and the subject's box.

        object / person: the biggest object read (the centre one among equals) becomes the
        placeholder, e.g. "a big {} in the center with sky background"; its mask is the box the
        renderer can draw it in, and its words all the grammar can say of it
        (`scene.full_description`). style: the content is named and the style is the placeholder,
        "a big red circle on the left with grass background in {} style", over the whole
        picture, and its words the nearest style captions name (`nearest_nameable_style`).
        """
        reading = self.checker.read([image])[0]
        if kind == "style":
            scene = replace(reading.to_scene(), style=None)
            if not scene.objects:
                return None
            return Subject(f"{caption(scene)} in {PLACEHOLDER} style",
                           words=self.nearest_nameable_style(image, reading.style))
        if not reading.objects:
            return None
        subject = max(reading.objects, key=lambda o: (SIZES[o.size], -abs(POSITIONS[o.position]
                                                                           - 0.5)))
        scene = reading.to_scene()
        text = caption(scene, words={subject.position: PLACEHOLDER})
        return Subject(text, subject_box(subject, image.size),
                       full_description(subject.to_object()),
                       add_contexts(scene, subject.position, subject.size, text))


    def nearest_nameable_style(self, image: Image.Image, style: str | None) -> str | None:
        """The style captions can name that the checker finds likeliest for a styled picture
        (None for an unstyled one): where a learned style's word starts.

        A style word started from an average word stays inert: its attention never sets the
        picture's overall look, and learning duotone from there drew it in 0 of 20 generations.
        Started from the nearest look the model has a word for (sepia, for duotone), the same
        learning drew it in 16 of 20.
        """
        if style is None:
            return None
        probabilities = self.checker.scene_probabilities(image, "style")
        return max(NAMEABLE_STYLES, key=lambda name: probabilities[name])


def subject_box(obj: ObjectReading, size: tuple[int, int]) -> np.ndarray:
    """(H, W) mask, 1 inside the box where the renderer draws an object read at its position."""
    width, height = size
    radius = SIZES[obj.size] / 2 * BOX_SCALE
    cx, cy = POSITIONS[obj.position], 0.55
    x = (np.arange(width) + 0.5) / width
    y = (np.arange(height) + 0.5) / height
    inside_x = np.abs(x - cx) <= radius + BOX_MARGIN[0]
    inside_y = np.abs(y - cy) <= radius + BOX_MARGIN[1]
    return (inside_y[:, None] & inside_x[None, :]).astype(np.float32)


def load(folder: str | Path) -> WorldCaptioner:
    """The factory captioner.json names: a captioner over the checker in `folder`."""
    return WorldCaptioner(Checker.load(folder))


def captioner_for(model: object) -> WorldCaptioner | None:
    """A captioner for a model whose folder has a `captioner/` subfolder, else None.

    `model` is anything with a `source` (the engine's DiffusionModel): a local folder or a hub id.
    The checker is loaded on each call of this function and kept only by the returned captioner.
    """
    source = getattr(model, "source", None)
    folder = Path(str(source)) / CAPTIONER_FOLDER if source else None
    if folder is None or not folder.is_dir():
        return None
    return load(folder)
