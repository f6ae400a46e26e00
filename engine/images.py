"""Reading untrusted image input safely, and fitting images to a model's resolution."""

from __future__ import annotations

import io
import warnings
from enum import StrEnum
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.errors import ImageError
from oneword.limits import IMAGE_LIMITS, ImageLimits


def read_image(source: str | Path | bytes, limits: ImageLimits = IMAGE_LIMITS) -> Image.Image:
    """Decode one still image to RGB, refusing oversize, animated or non-image input."""
    data = source if isinstance(source, bytes) else _read_bytes(Path(source), limits)
    if len(data) > limits.max_bytes:
        raise ImageError(f"the file is {len(data) / 2**20:.1f} MB; the limit is "
                         f"{limits.max_bytes / 2**20:.0f} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ImageError(f"the image is {width}x{height} pixels; the limit is "
                                 f"{limits.max_pixels / 1e6:.0f} megapixels")
            if getattr(image, "n_frames", 1) > 1:
                raise ImageError("animated images are not supported; send a still photo")
            image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        raise ImageError("this file is not an image I can read") from exc
    if min(image.size) < limits.min_side:
        raise ImageError(f"the image is too small ({width}x{height}); send at least "
                         f"{limits.min_side} pixels a side")
    return _to_rgb(image)


def _read_bytes(path: Path, limits: ImageLimits) -> bytes:
    try:
        if path.stat().st_size > limits.max_bytes:
            raise ImageError(f"{path.name} is larger than {limits.max_bytes / 2**20:.0f} MB")
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {path.name}: {exc.strerror or exc}") from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


# How far the whole frame of a photo may be squashed (its longer side over its shorter one, in
# the model's square) before the rest is padded: 4:3 and 3:2 photos are squashed whole, a 16:9
# one is squashed by 1.5 and padded by a twentieth of the square on each side.
MAX_SQUASH = 1.5


class Framing(StrEnum):
    """How a photo is put into the model's square.

    centre: the centre square, cut out and resized (`fit_square`); the strips beside it are not
    seen, which suits edits that change one thing and leave the rest of the photo as it was.
    whole: the whole frame (`fit_whole`), for edits that change every pixel (a restyle).
    """

    CENTRE = "centre"
    WHOLE = "whole"


def fit_square(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize to `size`: the model works on square images."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return _resized(square, (size, size))


def whole_frame_box(photo_size: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of a `size` square that `fit_whole` puts the photo in.

    The photo is squashed along its longer side by up to `MAX_SQUASH`, so that side spans the
    square; what its shorter side then leaves of the square is padding, split evenly.
    """
    width, height = photo_size
    aspect = max(width, height) / min(width, height)
    inner = max(1, min(size, round(size * min(aspect, MAX_SQUASH) / aspect)))
    before = (size - inner) // 2
    if width >= height:
        return 0, before, size, before + inner
    return before, 0, before + inner, size


def fit_whole(image: Image.Image, size: int) -> Image.Image:
    """The whole photo in a `size` square: squashed (`whole_frame_box`), and beyond the squash
    padded with its own edges mirrored, which the model reads as more of the scene rather than
    as a border it would draw (a flat bar) or smear (repeated edge pixels). A square photo
    comes out exactly as `fit_square` makes it."""
    left, top, right, bottom = whole_frame_box(image.size, size)
    inner = np.asarray(_resized(image.convert("RGB"), (right - left, bottom - top)))
    padded = np.pad(inner, ((top, size - bottom), (left, size - right), (0, 0)),
                    mode="symmetric")
    return Image.fromarray(padded)


def unfit_whole(square: Image.Image, photo_size: tuple[int, int]) -> Image.Image:
    """The part of a `fit_whole` square (or of an edit of it) that is the photo, stretched back
    to `photo_size` (Lanczos): the padding is dropped and the squash undone."""
    box = whole_frame_box(photo_size, square.width)
    return square.convert("RGB").resize(photo_size, Image.LANCZOS, box=box)


def fit(image: Image.Image, size: int, framing: Framing = Framing.CENTRE) -> Image.Image:
    """`image` in the model's `size` square as `framing` says."""
    return fit_whole(image, size) if Framing(framing) is Framing.WHOLE else fit_square(image, size)


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos to shrink (no aliasing), bicubic to enlarge (no ringing on the few pixels)."""
    shrinks = image.width * image.height > size[0] * size[1]
    return image.resize(size, Image.LANCZOS if shrinks else Image.BICUBIC)
