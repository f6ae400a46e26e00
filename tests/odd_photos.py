"""Photo sets for the photo check: the reserved creature's samples and a creature that is
clearly another one, drawn by the world's renderer."""

from __future__ import annotations

from PIL import Image

from tests.helpers import SAMPLES
from world.render import render
from world.scene import Features, Scene, WorldObject, hue_name, hue_rgb


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
