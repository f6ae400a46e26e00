"""Image inspection and resizing with Pillow, as Telegram does for photos and thumbnails.

Telegram stores every photo as a ladder of JPEG sizes (``s`` 90px, ``m`` 320px, ``x`` 800px,
``y`` 1280px, ``w`` 2560px on the long side) and gives image documents a small thumbnail. Bots
usually pick ``photo[-1]`` (largest) and sometimes ``photo[0]``; both must be real images.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

PHOTO_LADDER = (90, 320, 800, 1280)
PHOTO_MAX_SIDE = 2560
THUMBNAIL_SIDE = 320
JPEG_QUALITY = 87

MIME_BY_FORMAT = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


@dataclass(frozen=True)
class ImageInfo:
    """What Pillow can tell about image bytes without decoding all pixels."""

    width: int
    height: int
    format: str
    animated: bool

    @property
    def mime_type(self) -> str:
        """The MIME type Telegram would report for this format."""
        return MIME_BY_FORMAT.get(self.format, "application/octet-stream")


@dataclass(frozen=True)
class Rendition:
    """One encoded size of an image."""

    data: bytes
    width: int
    height: int


def probe(data: bytes) -> ImageInfo | None:
    """Identify an image, or ``None`` if the bytes are not one Pillow understands."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            animated = bool(getattr(image, "is_animated", False))
            return ImageInfo(image.width, image.height, image.format or "", animated)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _to_jpeg(image: Image.Image) -> bytes:
    """Encode as JPEG, flattening transparency onto white like Telegram's recompression."""
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        image = canvas
    elif image.mode != "RGB":
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _scaled(width: int, height: int, side: int) -> tuple[int, int]:
    """Size that fits ``side`` on the long edge, keeping the aspect ratio."""
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def photo_renditions(data: bytes) -> list[Rendition]:
    """JPEG sizes of a photo, smallest first; always at least a thumbnail and the full size.

    The largest rendition is the original bytes when they already are a JPEG within
    Telegram's 2560px cap, otherwise a re-encoded JPEG (as Telegram recompresses uploads).
    Raises ``ValueError`` when the bytes are not an image.
    """
    info = probe(data)
    if info is None:
        raise ValueError("not an image")
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        frame = image.convert("RGBA") if image.mode in ("P", "LA") else image.copy()
    long_side = max(info.width, info.height)
    if info.format == "JPEG" and long_side <= PHOTO_MAX_SIDE:
        full = Rendition(data, info.width, info.height)
    else:
        size = _scaled(info.width, info.height, min(long_side, PHOTO_MAX_SIDE))
        full = Rendition(_to_jpeg(frame.resize(size, Image.Resampling.LANCZOS)), *size)
    sides = [side for side in PHOTO_LADDER if side < long_side] or [PHOTO_LADDER[0]]
    smaller = []
    for side in sides:
        size = _scaled(info.width, info.height, min(side, long_side))
        resized = frame.resize(size, Image.Resampling.BILINEAR)
        smaller.append(Rendition(_to_jpeg(resized), *size))
    return [*smaller, full]


def thumbnail(data: bytes, side: int = THUMBNAIL_SIDE) -> Rendition | None:
    """A small JPEG preview of image bytes (for documents and stickers), or ``None``."""
    info = probe(data)
    if info is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            frame = image.convert("RGBA") if image.mode in ("P", "LA") else image.copy()
    except (OSError, ValueError):
        return None
    size = _scaled(info.width, info.height, min(side, max(info.width, info.height)))
    return Rendition(_to_jpeg(frame.resize(size, Image.Resampling.BILINEAR)), *size)
