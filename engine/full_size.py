"""An edit at the photo's own size: the model's change blended into the user's full photo.

The model edits a square of its own size (512 px for SD 1.5, 64 px for the bundled model) cut
from the photo's centre (`images.fit_square`). A confined edit (add, replace, remove) changes
only where its mask is, so the result is the user's photo, every pixel of it, with the edited
square upscaled (Lanczos) and blended in through the mask, softened at the mask's rim: outside
the mask, grown by a latent pixel, the pixels are the photo's own, exactly. A restyle changes
every pixel of the square the model saw; it comes back as that square at the photo's
resolution (the crop's side, Lanczos-upscaled), as the model never saw the strips beside it.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from engine.editing import composite, pixel_share


def centre_square(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of the centre square `fit_square` cuts from a photo."""
    width, height = size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def at_photo_size(photo: Image.Image, edited: Image.Image,
                  latent_mask: np.ndarray | None) -> tuple[Image.Image, np.ndarray | None]:
    """The edit at the photo's resolution, and each pixel's share (H, W) in [0, 1] of the edit.

    `latent_mask` is the edit's binary LocalBlend mask (latent resolution); None means the edit
    changed the whole square (a restyle), which then comes back alone, upscaled.
    """
    photo = photo.convert("RGB")
    box = centre_square(photo.size)
    side = box[2] - box[0]
    upscaled = edited.convert("RGB").resize((side, side), Image.LANCZOS)
    if latent_mask is None:
        return upscaled, None
    share = np.zeros((photo.height, photo.width), np.float32)
    share[box[1]:box[3], box[0]:box[2]] = pixel_share(torch.from_numpy(latent_mask), (side, side))
    canvas = photo.copy()
    canvas.paste(upscaled, box[:2])
    return composite(photo, canvas, share), share
