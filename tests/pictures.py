"""Test photos drawn with PIL: a few coloured blobs on a plain ground, any size, by seed; and
drawn portraits and group photos of faces that a face detector finds where they were drawn.

Engine tests edit these instead of the sticker world's renderings, so they run with nothing of
world/ imported: the engine must work on any picture.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFilter

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


def portrait(centre: tuple[int, int] = (170, 110), width: int = 80, size: int = 256,
             background: tuple[int, int, int] = (90, 140, 200)) -> Image.Image:
    """A drawn head-and-shoulders portrait: skin, hair, brows, eyes, nose and mouth, a body."""
    cx, cy = centre
    w, h = width, round(width * 1.3)
    image = Image.new("RGB", (size, size), background)
    d = ImageDraw.Draw(image)
    d.ellipse((cx - 1.4 * w, cy + 0.55 * h, cx + 1.4 * w, cy + 2.2 * h), fill=(60, 60, 110))
    d.rectangle((cx - 0.2 * w, cy + 0.3 * h, cx + 0.2 * w, cy + 0.75 * h), fill=(205, 160, 130))
    d.ellipse((cx - 0.58 * w, cy - 0.6 * h, cx + 0.58 * w, cy + 0.25 * h), fill=(60, 40, 25))
    d.ellipse((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), fill=(225, 180, 150))
    d.rectangle((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy - 0.3 * h), fill=(60, 40, 25))
    for side in (-1, 1):
        ex, ey = cx + side * 0.2 * w, cy - 0.08 * h
        d.rectangle((ex - 0.13 * w, ey - 0.12 * w, ex + 0.13 * w, ey - 0.08 * w),
                    fill=(70, 50, 35))
        d.ellipse((ex - 0.09 * w, ey - 0.04 * w, ex + 0.09 * w, ey + 0.04 * w), fill=(40, 30, 30))
    d.polygon([(cx, cy - 0.02 * h), (cx - 0.06 * w, cy + 0.15 * h),
               (cx + 0.06 * w, cy + 0.15 * h)], fill=(195, 145, 120))
    d.ellipse((cx - 0.17 * w, cy + 0.24 * h, cx + 0.17 * w, cy + 0.3 * h), fill=(150, 60, 60))
    return image.filter(ImageFilter.GaussianBlur(1.5))


def group_photo(size: tuple[int, int] = (320, 256), faces: int = 2) -> Image.Image:
    """Faces side by side from the left (each as `portrait` draws them), the room of two more
    free on the right."""
    width, height = size
    step = width // (faces + 2)
    image = portrait((step // 2 + 10, height // 2 - 20), step // 2, width)
    image = image.crop((0, 0, width, height))
    for number in range(1, faces):
        face = portrait((step // 2 + 10, height // 2 - 20), step // 2, width)
        image.paste(face.crop((0, 0, step, height)), (number * step, 0))
    return image
