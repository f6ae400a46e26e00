"""Malformed and hostile image files for upload tests, built from scratch in memory.

Each builder returns bytes a careless server or bot would choke on: a PNG cut in half, a
JPEG without its end, a decompression bomb (a small file announcing a huge canvas), a text
file named like a picture. Telegram refuses them as photos with a 400 and accepts them as
documents; tests check that our Bot API server and the bot do the same and never crash.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image(width: int = 640, height: int = 480, fmt: str = "PNG") -> bytes:
    """A whole, valid image with some detail (so that a truncated copy loses real data)."""
    picture = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    picture.save(out, fmt)
    return out.getvalue()


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first ``keep`` fraction of a file, as an interrupted upload leaves it."""
    return data[: max(1, int(len(data) * keep))]


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def png_bomb(side: int = 30_000, rows: int | None = None) -> bytes:
    """A grayscale PNG announcing ``side`` x ``side`` pixels whose data inflates to all zeros.

    ``rows`` limits how many rows of data are actually present (default: all of them, a real
    bomb: a few hundred kB that inflate to ``side**2`` bytes). Only the header is needed to
    trip a size check, so tests may pass a small ``rows`` to build it quickly.
    """
    row = b"\x00" * (side + 1)  # filter byte + one byte per pixel
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side if rows is None else rows))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", body + packer.flush())
            + _chunk(b"IEND", b""))


def png_with_lying_header(width: int = 640, height: int = 480) -> bytes:
    """A PNG whose header is fine but whose pixel data is not zlib at all."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"not zlib data" * 40)
            + _chunk(b"IEND", b""))


def text_named_png() -> bytes:
    """A text file a user might send as ``photo.png``."""
    return b"This is not a picture, just some text saved with a .png name.\n" * 4


def all_bad() -> dict[str, bytes]:
    """Every kind of bad image, by name (for parametrized tests)."""
    return {
        "truncated-png": truncated(image(640, 480, "PNG")),
        "truncated-jpeg": truncated(image(640, 480, "JPEG")),
        "truncated-gif": truncated(image(64, 48, "GIF")),
        "truncated-webp": truncated(image(640, 480, "WEBP")),
        "header-only-png": image(640, 480, "PNG")[:33],
        "lying-header-png": png_with_lying_header(),
        "bomb-png": png_bomb(30_000, rows=64),
        "decodable-bomb-png": png_bomb(9_200, rows=9_200),
        "text-named-png": text_named_png(),
    }
