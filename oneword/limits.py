"""What an input picture may be: checked by the bot before it queues a job and by the engine
when it reads the file, with the same numbers (standard library only, so both can import it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on an input picture."""

    max_bytes: int = 20 * 1024 * 1024  # Telegram's download limit for bots
    max_pixels: int = 40_000_000  # larger pictures are decompression bombs or scans
    min_side: int = 32  # the smallest picture a model with 8x downsampling can still edit


IMAGE_LIMITS = ImageLimits()
