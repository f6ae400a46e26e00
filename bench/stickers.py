"""Sticker quality and speed on the bundled world: the segmenter's cut-out against exact masks.

    python -m bench.stickers                    # prints the figures as JSON
    python -m bench.stickers --scenes 100 --out stickers.json

The mask IoU compares a sticker's opaque area (the cut-out with its white outline, before the
crop, at 512 px) with the union of the scene's objects rendered at 512 px and grown by the
outline, as bench/speed.py measures it: on the speed photo (the first sample scene) and on
held-out scenes of the checker's 'eval' split, shown at 256 px as a user would send them. The
sticker time is the median of whole stickers (cut-out, crop, outline, WEBP) on one thread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.speed import speed_photo, sticker_iou
from engine.errors import EngineError
from engine.model import load_model
from engine.segmentation import load_segmenter
from engine.stickers import cut_out, make_sticker, outlined, sticker_webp
from world.checker import split_scene
from world.render import render

PHOTO_SIDE = 256


def measure_stickers(model_source: str | None = None, scenes: int = 50, repeats: int = 5
                     ) -> dict:
    """IoU on the speed photo and on `scenes` held-out scenes, and the median sticker time."""
    model = load_model(model_source, "cpu")
    segmenter = load_segmenter(model.source)
    photo, text, scene = speed_photo()
    figures: dict = {"segmenter": type(segmenter).__name__ if segmenter else "attention"}
    cut = cut_out(model, photo, text, segmenter)
    figures["speed_photo_iou"] = sticker_iou(outlined(*cut), scene)
    ious = []
    for index in range(scenes):
        held_out = split_scene("eval", index)
        image = render(held_out, PHOTO_SIDE).image
        try:
            cut = cut_out(model, image, None, segmenter)
        except EngineError:  # no subject found: the worst IoU
            ious.append(0.0)
            continue
        ious.append(sticker_iou(outlined(*cut), held_out))
    figures["held_out_iou_mean"] = round(float(np.mean(ious)), 4)
    figures["held_out_iou_min"] = round(float(np.min(ious)), 4)
    figures["held_out_scenes"] = scenes
    sticker_webp(make_sticker(model, photo, text, segmenter=segmenter))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sticker_webp(make_sticker(model, photo, text, segmenter=segmenter))
        times.append(time.perf_counter() - start)
    figures["sticker_seconds_median"] = round(float(np.median(times)), 4)
    figures["sticker_seconds_runs"] = [round(t, 4) for t in times]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="diffusers folder (default: bundled)")
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    figures = measure_stickers(args.model, args.scenes, args.repeats)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
