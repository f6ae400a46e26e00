"""Reading untrusted image input safely, and fitting images to a model's resolution."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

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


def fit_square(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize to `size`: the model works on square images."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((size, size), Image.LANCZOS if side > size else Image.BICUBIC)
