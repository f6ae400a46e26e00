"""Photo sets for the photo check: the reserved creature's samples and a creature that is
clearly another one, drawn by the world's renderer."""

from __future__ import annotations

from dataclasses import replace

from PIL import Image

from tests.helpers import SAMPLES
from world.render import render
from world.scene import (
    RESERVED_CREATURE,
    Features,
    Scene,
    WorldObject,
    hue_name,
    hue_rgb,
)


def creature_photos(count: int = 4) -> list[Image.Image]:
    """The bundled samples of the reserved creature."""
    return [Image.open(SAMPLES / f"creature/creature-{i}.png").convert("RGB")
            for i in range(1, count + 1)]


def another_creature() -> Image.Image:
    """A creature of another colour, eyes, ears, mouth and marks."""
    features = Features(hue=0.05, eyes="sleepy", ears="round", mouth="smile", marks="none")
    creature = WorldObject("creature", hue_name(0.05), "big", "center", hue_rgb(0.05),
                           features=features)
    return render(Scene((creature,), "grass", None, 3), 256).image


def recoloured_creature(hue: float = 0.8) -> Image.Image:
    """The reserved creature in another colour, all else the same."""
    features = replace(RESERVED_CREATURE, hue=hue)
    creature = WorldObject("creature", hue_name(hue), "big", "right", hue_rgb(hue),
                           features=features)
    return render(Scene((creature,), "sand", None, 5), 256).image
