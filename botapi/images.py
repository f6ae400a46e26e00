"""Image inspection and resizing with Pillow, as Telegram does for photos and thumbnails.

Telegram stores every photo as a ladder of JPEG sizes (``s`` 90px, ``m`` 320px, ``x`` 800px,
``y`` 1280px, ``w`` 2560px on the long side) and gives image documents a small thumbnail. Bots
usually pick ``photo[-1]`` (largest) and sometimes ``photo[0]``; both must be real images.

Uploads are untrusted: truncated files, lying headers and decompression bombs must end in
Telegram's own refusals (:class:`ImageProblem`), never in an exception the server did not
expect. Pixels are only decoded after the size is known to be at most
:data:`DECODE_MAX_PIXELS`.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from PIL import Image

PHOTO_LADDER = (90, 320, 800, 1280)
PHOTO_MAX_SIDE = 2560
THUMBNAIL_SIDE = 320
JPEG_QUALITY = 87
# Telegram refuses photos whose width + height exceed 10000 or whose sides differ 20-fold.
PHOTO_MAX_SIDES_SUM = 10_000
PHOTO_MAX_RATIO = 20
# We never decode more pixels than this (after JPEG draft reduction): a decompression bomb
# guard below Pillow's own warning threshold (~89 Mpx), above any real camera's photo.
DECODE_MAX_PIXELS = 80_000_000

# Telegram's descriptions for photos it cannot take.
IMAGE_PROCESS_FAILED = "IMAGE_PROCESS_FAILED"
PHOTO_INVALID_DIMENSIONS = "PHOTO_INVALID_DIMENSIONS"

# What Pillow raises on malformed data: its plugins let low-level errors through
# (struct.error, IndexError, ...), and a bomb header raises DecompressionBombError.
_DECODE_ERRORS = (
    OSError, ValueError, EOFError, SyntaxError, IndexError, TypeError, KeyError,
    struct.error, MemoryError, Image.DecompressionBombError,
)

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

    @property
    def pixels(self) -> int:
        return self.width * self.height


class ImageProblem(ValueError):
    """Bytes that cannot become a photo; ``reason`` is Telegram's error description."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Rendition:
    """One encoded size of an image."""

    data: bytes
    width: int
    height: int


def identify(data: bytes) -> ImageInfo:
    """Read an image's header (no pixels decoded) or raise :class:`ImageProblem`.

    A header whose pixel count trips Pillow's bomb check (over ~179 Mpx) is reported as
    ``PHOTO_INVALID_DIMENSIONS``: no image that large fits Telegram's ``w + h <= 10000``.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            animated = bool(getattr(image, "is_animated", False))
            return ImageInfo(image.width, image.height, image.format or "", animated)
    except Image.DecompressionBombError as exc:
        raise ImageProblem(PHOTO_INVALID_DIMENSIONS, "the image has far too many pixels") from exc
    except _DECODE_ERRORS as exc:
        raise ImageProblem(IMAGE_PROCESS_FAILED, "not an image") from exc


def probe(data: bytes) -> ImageInfo | None:
    """Identify an image, or ``None`` if the bytes are not one we can safely read."""
    try:
        return identify(data)
    except ImageProblem:
        return None


def check_photo_dimensions(info: ImageInfo) -> None:
    """Telegram's size rules for a photo (not for documents): refuse with its description."""
    long_side, short_side = max(info.width, info.height), min(info.width, info.height)
    if info.width + info.height > PHOTO_MAX_SIDES_SUM or long_side > PHOTO_MAX_RATIO * short_side:
        raise ImageProblem(PHOTO_INVALID_DIMENSIONS, f"{info.width}x{info.height}")


def _decode(data: bytes, fits: int) -> Image.Image:
    """Decode all pixels (JPEGs reduced by draft towards ``fits`` px) as an RGB/RGBA copy.

    Raises :class:`ImageProblem` for truncated or corrupt data and for images above
    :data:`DECODE_MAX_PIXELS` even after draft reduction.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "JPEG":
                image.draft("RGB", (fits, fits))
            if image.width * image.height > DECODE_MAX_PIXELS:
                raise ImageProblem(
                    PHOTO_INVALID_DIMENSIONS, f"{image.width}x{image.height} is too many pixels"
                )
            image.load()
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            return image.convert("RGBA" if has_alpha else "RGB")
    except ImageProblem:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageProblem(PHOTO_INVALID_DIMENSIONS, "the image has far too many pixels") from exc
    except _DECODE_ERRORS as exc:
        raise ImageProblem(IMAGE_PROCESS_FAILED, "the image data is truncated or corrupt") from exc


def _to_jpeg(image: Image.Image) -> bytes:
    """Encode an RGB/RGBA image as JPEG, flattening transparency onto white like Telegram."""
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, (255, 255, 255))
        canvas.paste(image, mask=image.getchannel("A"))
        image = canvas
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
    Raises :class:`ImageProblem` (a ``ValueError``) when the bytes are not a whole image or
    have too many pixels to decode; Telegram's photo size rules are not applied here.
    """
    info = identify(data)
    frame = _decode(data, PHOTO_MAX_SIDE)
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
        frame = _decode(data, side)
    except ImageProblem:
        return None
    size = _scaled(info.width, info.height, min(side, max(info.width, info.height)))
    return Rendition(_to_jpeg(frame.resize(size, Image.Resampling.BILINEAR)), *size)
