"""Limits that several processes must agree on, each in one place (standard library only, so
the bot, the storage and the engine can all import it): what an input picture may be, how many
photos learning takes, and how large a stored file may be."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on an input picture."""

    max_bytes: int = 20 * 1024 * 1024  # Telegram's download limit for bots
    max_pixels: int = 40_000_000  # larger pictures are decompression bombs or scans
    min_side: int = 32  # the smallest picture a model with 8x downsampling can still edit


IMAGE_LIMITS = ImageLimits()


@dataclass(frozen=True)
class PhotoCount:
    """How many photos of a thing learning a word takes: the bot asks for and keeps this many,
    the engine and the command line refuse other counts."""

    least: int = 3
    most: int = 5


LEARN_PHOTOS = PhotoCount()

# The largest file (photo, concept, inversion, result) the storage keeps, by default; the
# service's own limit is the max_file_mb setting.
MAX_STORED_FILE_BYTES = 50 * 1024 * 1024
