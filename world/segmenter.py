"""The bundled model's subject segmenter: which pixels of a sticker-world picture are objects.

A small U-shaped convolutional network reads a picture at 64x64 (the world's own size) and gives
one logit per pixel; the logits are upsampled to the picture's size, so a 512 px sticker gets
smooth edges. It is trained by world/segmenter_train.py on the renderer's exact masks and
shipped in the model folder's `segmenter/`; the folder's `segmenter.json` names `load` here,
and the engine loads it through engine/segmentation.py without importing this package.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from engine.segmentation import SEGMENTER_FILE
from world.checker import CONFIG_FILE, IMAGE_SIZE, WEIGHTS_FILE, images_to_tensor

SEGMENTER_FOLDER = "segmenter"  # subfolder of a model folder holding the network


@dataclass(frozen=True)
class SegmenterConfig:
    """Widths of the network's levels (64, 32, 16, 8 px); stored beside the weights."""

    widths: tuple[int, ...] = (16, 32, 48, 64)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.SiLU())


class SegmenterNet(nn.Module):
    """(B, 3, 64, 64) in [-1, 1] -> (B, 1, 64, 64) logits of "an object is here"."""

    def __init__(self, config: SegmenterConfig):
        super().__init__()
        widths = config.widths
        self.down = nn.ModuleList(
            [_block(3 if i == 0 else widths[i - 1], w) for i, w in enumerate(widths)])
        self.up = nn.ModuleList(
            [_block(widths[i + 1] + widths[i], widths[i]) for i in range(len(widths) - 1)])
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for i in reversed(range(len(self.up))):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.up[i](torch.cat([x, skips[i]], 1))
        return self.head(x)


class WorldSegmenter:
    """A trained SegmenterNet: `mask` gives where a picture's objects are."""

    def __init__(self, net: SegmenterNet):
        self.net = net.eval()

    @torch.no_grad()
    def mask(self, image: Image.Image) -> np.ndarray:
        """(H, W) in [0, 1] at the picture's own size, 1 on the objects (any size of picture:
        read at 64x64, centre-cropped to a square as the model sees it)."""
        logits = self.net(images_to_tensor([image]))
        width, height = image.size
        side = min(width, height)
        full = F.interpolate(logits, size=(side, side), mode="bilinear", align_corners=False)
        out = np.zeros((height, width), np.float32)
        top, left = (height - side) // 2, (width - side) // 2
        out[top:top + side, left:left + side] = torch.sigmoid(full)[0, 0].numpy()
        return out


def save(net: SegmenterNet, config: SegmenterConfig, folder: Path, extra: dict) -> None:
    """Write the network (float16) and its config into `folder`, and name this module in the
    model folder's segmenter.json (engine/segmentation.py reads it)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().half() if v.is_floating_point() else v
               for k, v in net.state_dict().items()}, folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(
        {"net": asdict(config), "image_size": IMAGE_SIZE, **extra}, indent=2) + "\n")
    (folder.parent / SEGMENTER_FILE).write_text(json.dumps(
        {"factory": f"{__name__}:load", "folder": folder.name}) + "\n")


def load(folder: str | Path) -> WorldSegmenter:
    """The factory segmenter.json names: the network saved in `folder`."""
    folder = Path(folder)
    config = json.loads((folder / CONFIG_FILE).read_text())
    net = SegmenterNet(SegmenterConfig(widths=tuple(config["net"]["widths"])))
    net.load_state_dict({k: v.float() if v.is_floating_point() else v
                         for k, v in load_file(folder / WEIGHTS_FILE).items()})
    return WorldSegmenter(net)
