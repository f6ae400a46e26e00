"""Sticker quality and speed on the bundled world: the segmenter's cut-out against exact masks,
and sticker packs of a learned word judged by the captioner.

    python -m bench.stickers                    # prints the figures as JSON
    python -m bench.stickers --scenes 100 --packs 4 --out stickers.json

The mask IoU compares a sticker's opaque area (the cut-out with its white outline, before the
crop, at 512 px) with the union of the scene's objects rendered at 512 px and grown by the
outline, as bench/speed.py measures it: on the speed photo (the first sample scene) and on
held-out scenes of the checker's 'eval' split, shown at 256 px as a user would send them. The
sticker time is the median of whole stickers (cut-out, crop, outline, WEBP) on one thread.

Packs: the reserved creature is learned from its sample photos (as bench/speed.py learns it,
not timed here), then whole packs of the bundled model's six expressions are drawn with
different seeds and timed. The captioner reads each sticker's drawing: the word is recognised
when the creature's kind, ears, marks and hue are the reserved creature's (its eyes and mouth
are the expression's to change), and the expression is drawn when its eyes and mouth are the
asked ones. The pack keeps the best of several drawings by the same captioner's words, so the
figures are also given for one drawing per sticker (no choice).
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
from world.scene import caption

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
        try:  # the attention cut-out needs the caption; a segmenter does not
            cut = cut_out(model, image, caption(held_out), segmenter)
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


def judge_pack(checker, stickers) -> tuple[int, int]:
    """(recognised, expression drawn) counts over a pack's stickers, read by the checker."""
    from world.checker import reserved_parts
    from world.scene import EYE_WORDS, MOUTH_WORDS

    eyes = {word: value for value, word in EYE_WORDS.items()}
    mouths = {word: value for value, word in MOUTH_WORDS.items()}
    recognised = drawn = 0
    for sticker, reading in zip(stickers, checker.read([s.picture for s in stickers]),
                                strict=True):
        parts = reserved_parts(reading, "creature", "center")
        recognised += all(parts[name] for name in ("kind", "ears", "marks", "hue"))
        seen = reading.object_at("center")
        features = seen.features if seen is not None else None
        wanted_eyes = next(eyes[w] for w in sticker.expression.words if w in eyes)
        wanted_mouth = next(mouths[w] for w in sticker.expression.words if w in mouths)
        drawn += features is not None and (features.eyes, features.mouth) == (wanted_eyes,
                                                                              wanted_mouth)
    return recognised, drawn


def measure_packs(model_source: str | None = None, packs: int = 4, candidates: int | None = None,
                  first_seed: int = 0) -> dict:
    """Time and captioner judgement of `packs` packs of the learned reserved creature, drawn
    with seeds from `first_seed` on (other seeds than the default's: a held-out check of
    choices made while looking at the default's)."""
    from bench.concepts import learn_reserved
    from engine.captioning import load_captioner
    from engine.config import ConceptSettings
    from engine.packs import load_pack_plan, make_pack

    model = load_model(model_source, "cpu")
    segmenter, captioner = load_segmenter(model.source), load_captioner(model.source)
    plan = load_pack_plan(model.source, "")
    _, learned = learn_reserved(model, "creature", ConceptSettings())
    figures: dict = {"packs": packs, "stickers_per_pack": len(plan.expressions),
                     "first_seed": first_seed}
    for label, count in (("chosen", candidates), ("one_drawing", 1)):
        options = {} if count is None else {"candidates": count}
        times, recognised, drawn = [], 0, 0
        for seed in range(first_seed, first_seed + packs):
            start = time.perf_counter()
            stickers = make_pack(model, learned.concept, plan, segmenter,
                                 captioner if count != 1 else None, seed=seed, **options)
            times.append(time.perf_counter() - start)
            hits = judge_pack(captioner.checker, stickers)
            recognised, drawn = recognised + hits[0], drawn + hits[1]
        total = packs * len(plan.expressions)
        figures[label] = {"pack_seconds_median": round(float(np.median(times)), 2),
                          "pack_seconds_runs": [round(t, 2) for t in times],
                          "recognised_share": round(recognised / total, 3),
                          "expression_share": round(drawn / total, 3), "stickers": total}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="diffusers folder (default: bundled)")
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--packs", type=int, default=0, help="also draw this many packs")
    parser.add_argument("--pack-seed", type=int, default=0,
                        help="the first pack's seed (the others follow it)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    figures = measure_stickers(args.model, args.scenes, args.repeats)
    if args.packs:
        figures["packs"] = measure_packs(args.model, args.packs, first_seed=args.pack_seed)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
