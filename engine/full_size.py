"""An edit at the photo's own size: the model's change put back into the user's full photo.

The model edits a square of its own size (512 px for SD 1.5, 64 px for the bundled model), and
how the photo was put into that square (`Framing`, engine/images.py) decides how the edit comes
back.

A confined edit (add, replace, remove) sees the centre square (`images.fit_square`) and changes
only where its mask is, so the result is the user's photo, every pixel of it, with the edited
square upscaled (Lanczos) and blended in through the mask, softened at the mask's rim: outside
the mask, grown by a latent pixel, the pixels are the photo's own, exactly.

A restyle changes every pixel, so it must see every pixel: it is inverted and edited on the
whole frame (`images.fit_whole`: squashed into the square by up to 1.5, the rest padded with
the frame's mirrored edges), and the restyled square comes back with its padding dropped and
the squash undone, Lanczos-upscaled to the photo's size. Squashing, rather than padding
alone, gives the photo all of the model's pixels (a letterboxed 4:3 photo would get three
quarters of them), and a squash of 1.5 or less is one the model redraws as the same scene.
The photo's own fine detail, above what the model's square can hold, is not put back on the
upscaled restyle: that band is the photo's texture (grain, fur, print), which is what a style
replaces, and adding it back would make the result read as the photo with a colour grade.
A restyle at full size is therefore as soft as the model's resolution makes it.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from engine.editing import composite, pixel_share
from engine.errors import InversionError
from engine.images import Framing, unfit_whole


def centre_square(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of the centre square `fit_square` cuts from a photo."""
    width, height = size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def framing_for(photo_size: tuple[int, int], changes_everything: bool) -> Framing:
    """How to put a photo into the model's square for an edit: the whole frame for an edit
    that changes every pixel of a photo that is not square, else the centre square (the
    same thing for a square photo, so one inversion serves every edit of it)."""
    width, height = photo_size
    return Framing.WHOLE if changes_everything and width != height else Framing.CENTRE


def at_photo_size(photo: Image.Image, edited: Image.Image, latent_mask: np.ndarray | None,
                  framing: Framing = Framing.CENTRE) -> tuple[Image.Image, np.ndarray | None]:
    """The edit at the photo's resolution, and each pixel's share (H, W) in [0, 1] of the edit.

    `edited` is the model's square, framed as `framing` says; `latent_mask` is the edit's
    binary LocalBlend mask (latent resolution). None means the edit changed the whole square
    (a restyle): the whole frame comes back from a whole-frame square, the centre square alone
    from a centre one.
    """
    photo = photo.convert("RGB")
    if Framing(framing) is Framing.WHOLE:
        if latent_mask is not None:
            raise InversionError("a whole-frame inversion is for edits that change every "
                                 "pixel; an edit with a mask needs the centre square")
        return unfit_whole(edited, photo.size), None
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
