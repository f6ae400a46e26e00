"""Test photos drawn with PIL: a few coloured blobs on a plain ground, any size, by seed.

Engine tests edit these instead of the sticker world's renderings, so they run with nothing of
world/ imported: the engine must work on any picture.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

COLOURS = ((220, 40, 40), (40, 170, 60), (40, 90, 225), (245, 215, 40), (145, 60, 195),
           (250, 140, 25), (25, 25, 25), (248, 248, 248))


def test_photo(seed: int = 0, size: int | tuple[int, int] = 32, blobs: int = 2) -> Image.Image:
    """An RGB photo of `blobs` ellipses and boxes on a ground of another colour."""
    rng = random.Random(seed)
    width, height = (size, size) if isinstance(size, int) else size
    ground, *inks = rng.sample(COLOURS, blobs + 1)
    image = Image.new("RGB", (width, height), ground)
    draw = ImageDraw.Draw(image)
    for number, ink in enumerate(inks):
        radius = rng.uniform(0.12, 0.22) * min(width, height)
        x = (number + 0.5) / blobs * width + rng.uniform(-0.05, 0.05) * width
        y = rng.uniform(0.4, 0.6) * height
        box = (x - radius, y - radius, x + radius, y + radius)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=ink)
    return image


test_photo.__test__ = False  # a helper, not a test, though its name starts with "test"
