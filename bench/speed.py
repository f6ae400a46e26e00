"""Speed and memory of each stage on one model, our defaults beside the papers' reference settings.

Stages: learning a concept (the reserved creature from its sample photos), DDIM inversion,
null-text inversion, the fast (negative-prompt) inversion, one edit and one sticker, all on the
first sample photo. Each row pairs our settings with a reference, on the same model and images,
with what the speed-up costs in quality:
- inversions: the reference is null-text inversion as published (InversionSettings.reference());
  quality is the reconstruction PSNR of the photo;
- textual inversion: the reference is 3000 steps at the reference learning rate without latent
  caching (ConceptSettings.reference()). On a CPU that run is long, so a fixed number of its
  steps is timed and the time per step extrapolated to 3000 (marked as such in the report);
  quality is the checker's recognition of the concept and the final training loss.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from PIL import Image, ImageFilter

from bench.concepts import (
    QUALITY_BAR,
    ConceptCache,
    concept_shown,
    learn_reserved,
)
from bench.measure import PeakMemory, UNetCounter, time_runs
from bench.options import Plan
from bench.quality import with_object
from engine.config import ConceptSettings, EditSettings, InversionSettings
from engine.inversion import Inversion, invert, reconstruct
from engine.metrics import psnr
from engine.model import DiffusionModel
from engine.operations import Editor, EditRequest
from engine.segmentation import load_segmenter
from engine.stickers import STICKER_SIDE, cut_out, make_sticker, outlined
from world.render import render
from world.samples import SAMPLES_DIR, target_scenes
from world.scene import Scene, caption

STAGES = ("learn_concept", "ddim_inversion", "null_text_inversion", "fast_inversion",
          "direct_inversion", "edit", "edit_direct", "sticker", "cli_learn")
STAGE_TITLES = {
    "learn_concept": "learn a concept (reserved creature)",
    "ddim_inversion": "DDIM inversion",
    "null_text_inversion": "null-text inversion",
    "fast_inversion": "fast inversion (negative prompt)",
    "direct_inversion": "direct inversion (PnP-Inversion)",
    "edit": "one edit (replace circle with square)",
    "edit_direct": "one edit on the direct inversion",
    "sticker": "one sticker",
    "cli_learn": "`oneword learn` as the README runs it (its own process)",
}
# `oneword learn` with the README's example on a 2-core CPU, no environment variable set.
CLI_LEARN_TARGET_SECONDS = 60.0
EDIT_COMMAND = EditRequest("replace", subject="circle", concept="square")


@dataclass
class Side:
    """One configuration of a stage: its time, memory and quality."""

    label: str  # the settings, in words
    seconds: float  # median of the timed runs, or the extrapolated total
    runs: list[float] = field(default_factory=list)
    memory: dict[str, float | None] = field(default_factory=dict)
    quality: dict[str, float | int | bool | None] = field(default_factory=dict)
    extrapolated: bool = False
    note: str = ""
    evaluations: dict[str, float] = field(default_factory=dict)  # UNet evaluations per run

    def as_dict(self) -> dict:
        return {"label": self.label, "seconds": round(self.seconds, 4),
                "runs": [round(r, 4) for r in self.runs], **self.memory,
                "quality": self.quality, "extrapolated": self.extrapolated, "note": self.note,
                "evaluations": self.evaluations}


def stage(ours: Side, reference: Side | None) -> dict:
    """A report row: both sides and the ratio of their times (reference / ours: the speed-up)."""
    ratio = reference.seconds / ours.seconds if reference is not None and ours.seconds > 0 else None
    return {"ours": ours.as_dict(), "reference": reference.as_dict() if reference else None,
            "ratio": round(ratio, 3) if ratio is not None else None}


def speed_photo() -> tuple[Image.Image, str, Scene]:
    """The first sample photo (256 px, as a user would send it), its caption and its scene."""
    index = json.loads((SAMPLES_DIR / "samples.json").read_text())
    entry = index["scenes"][0]
    scene = target_scenes()[0]
    if caption(scene) != entry["caption"]:
        raise RuntimeError("engine/samples/samples.json is out of date: run "
                           "python -m world.samples")
    return Image.open(SAMPLES_DIR / entry["file"]).convert("RGB"), entry["caption"], scene


def inversion_settings(plan: Plan) -> tuple[InversionSettings, InversionSettings]:
    """Our inversion settings and the reference's, with the plan's step count if it has one."""
    ours, reference = InversionSettings(), InversionSettings.reference()
    if plan.speed_steps:
        ours, reference = (replace(s, steps=plan.speed_steps) for s in (ours, reference))
    return ours, reference


def concept_settings(plan: Plan) -> tuple[ConceptSettings, ConceptSettings]:
    """Our textual-inversion settings (capped by the plan) and the reference recipe."""
    ours = ConceptSettings()
    if plan.ti_steps:
        ours = replace(ours, steps=min(ours.steps, plan.ti_steps))
    return ours, ConceptSettings.reference()


def describe_inversion(mode: str, settings: InversionSettings) -> str:
    if mode == "null-text":
        return (f"null-text, {settings.steps} steps x {settings.inner_steps} inner, "
                f"lr {settings.learning_rate:g}, stop under {settings.early_stop:g} + "
                f"{settings.early_stop_growth:g} x the share of steps done")
    return f"{mode}, {settings.steps} steps"


def reconstruction_psnr(model: DiffusionModel, inversion: Inversion) -> float:
    """PSNR of the reconstruction against the photo as the model saw it."""
    return round(psnr(inversion.image, reconstruct(model, inversion)), 3)


def time_inversion(model: DiffusionModel, image: Image.Image, text: str, mode: str,
                   settings: InversionSettings, repeats: int) -> tuple[Side, Inversion]:
    """Median time of inverting the photo; null-text warms up with a 2-step run, not a full one."""
    warmup = None
    if mode == "null-text":
        def warmup() -> Inversion:
            return invert(model, image, text, mode, replace(settings, steps=2))
    timing, inversion = time_runs(lambda: invert(model, image, text, mode, settings), repeats,
                                  model.device, warmup, unet=model.unet)
    side = Side(describe_inversion(mode, settings), timing.median, timing.runs, timing.memory,
                {"reconstruction_psnr_db": reconstruction_psnr(model, inversion)},
                evaluations=timing.evaluations)
    return side, inversion


def sticker_iou(sticker: Image.Image, scene: Scene, border: int = 5) -> float:
    """IoU of the sticker's opaque area with the scene's objects, grown by the white outline
    (a sticker before its crop: the photo's whole 512 px square)."""
    truth = sum(render(scene, STICKER_SIDE).masks.values())
    truth = Image.fromarray(((np.asarray(truth) > 0.5) * 255).astype(np.uint8))
    truth = np.asarray(truth.filter(ImageFilter.MaxFilter(2 * border + 1))) > 127
    opaque = np.asarray(sticker.getchannel("A")) > 127
    union = np.logical_or(truth, opaque).sum()
    return round(float(np.logical_and(truth, opaque).sum() / max(union, 1)), 4)


def extrapolate(start: float, stamps: list[float], total_steps: int) -> tuple[float, float]:
    """Total time of `total_steps` steps from the end-of-step times of the first few.

    per step = the mean step time after the first; setup = what came before the first step
    (reading and encoding the photos). Returns (extrapolated seconds, seconds per step).
    """
    if len(stamps) > 1:
        per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    else:
        per_step = stamps[0] - start
    setup = max(0.0, stamps[0] - start - per_step)
    return setup + per_step * total_steps, per_step


def extrapolated_evaluations(counter: UNetCounter, ran: int, total: int) -> dict[str, float]:
    """UNet evaluations of a `total`-step run from a counted run of its first `ran` steps."""
    return {key: round(value * total / max(ran, 1), 1)
            for key, value in counter.per_run(1).items()}


def learn_stage(model: DiffusionModel, checker, plan: Plan, cache: ConceptCache | None,
                log: Callable[[str], None]) -> dict:
    """Textual inversion of the reserved creature: ours run fully, the reference extrapolated."""
    ours_settings, reference_settings = concept_settings(plan)
    learn_reserved(model, "creature", replace(ours_settings, steps=2))  # warm-up
    log(f"speed: learning the creature with our settings (up to {ours_settings.steps} steps)")
    with PeakMemory(model.device) as memory, UNetCounter(model.unet) as ours_count:
        learned, result = learn_reserved(model, "creature", ours_settings)
    if cache is not None:
        cache.put(learned, ours_settings)
    shown = None
    if checker is not None:
        shown = concept_shown(model, checker, learned.concept, "creature", plan.concept_samples,
                              plan.sample_steps)
    start = f" from '{result.start_words}'" if result.start_words else ""
    ours = Side(f"{learned.concept.num_vectors} vectors{start}, "
                f"lr {ours_settings.learning_rate:g}, "
                f"cached latents x{ours_settings.augment}, early stop, "
                f"<= {ours_settings.steps} steps",
                learned.seconds, [learned.seconds], memory.as_dict(),
                {"steps": learned.steps, "stopped": result.reason,
                 "final_loss": round(learned.final_loss, 5),
                 "shown": shown, "bar": QUALITY_BAR,
                 "reached_bar": None if shown is None else shown >= QUALITY_BAR,
                 "seconds_per_step": round(learned.seconds / max(learned.steps, 1), 5)},
                note="one run (learning is long), after a 2-step warm-up run"
                + (f"; capped at {plan.ti_steps} steps by the {plan.name} plan"
                   if plan.ti_steps and plan.ti_steps < ConceptSettings().steps else ""),
                evaluations=ours_count.per_run(1))

    steps = min(plan.ti_reference_steps, reference_settings.steps)
    log(f"speed: timing {steps} of the reference's {reference_settings.steps} steps")
    stamps: list[float] = []
    with PeakMemory(model.device) as memory, UNetCounter(model.unet) as reference_count:
        start = time.perf_counter()
        partial, _ = learn_reserved(model, "creature", replace(reference_settings, steps=steps),
                                    stamps)
    total, per_step = extrapolate(start, stamps, reference_settings.steps)
    complete = steps == reference_settings.steps
    note = ("ConceptSettings.reference() caches no augmented views (augment=0) but still "
            "encodes each photo once, so no per-step VAE encoding is in this time")
    if not complete:
        note = (f"{steps} of {reference_settings.steps} steps timed and the time per step "
                f"extrapolated; its loss is after {steps} steps and recognition is not "
                f"measured; {note}")
    reference = Side(f"{reference_settings.vectors} vector, lr "
                     f"{reference_settings.learning_rate:g}, no augmented latent cache, "
                     f"{reference_settings.steps} steps", total, [partial.seconds],
                     memory.as_dict(),
                     {"steps": steps, "final_loss": round(partial.final_loss, 5),
                      "shown": None, "seconds_per_step": round(per_step, 5)},
                     extrapolated=not complete, note=note,
                     evaluations=extrapolated_evaluations(reference_count, steps,
                                                          reference_settings.steps))
    if complete and checker is not None:
        reference.quality["shown"] = concept_shown(model, checker, partial.concept, "creature",
                                                   plan.concept_samples, plan.sample_steps)
    return {**stage(ours, reference), "settings": {"ours": asdict(ours_settings),
                                                   "reference": asdict(reference_settings)}}


def cli_learn_stage(model: DiffusionModel, plan: Plan, log: Callable[[str], None]) -> dict:
    """`oneword learn` on the README's example (the creature's sample photos), timed from the
    start of its process to its end, as a user runs it: torch's default threads and no OMP_* or
    MKL_* variable in its environment, whatever this benchmark's own settings."""
    photos = sorted(str(p) for p in (SAMPLES_DIR / "creature").glob("*.png"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_"))}
    steps = ["--steps", str(plan.ti_steps)] if plan.ti_steps else []
    log(f"speed: oneword learn in its own process ({len(photos)} photos)")
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "oneword", "learn", "--name", "mochi", "--kind",
                   "object", "--out", os.path.join(folder, "mochi.safetensors"), "--model",
                   str(model.source), "--device", str(model.device), *steps, *photos]
        with open(os.path.join(folder, "out.txt"), "w+") as out, \
                open(os.path.join(folder, "err.txt"), "w+") as err:
            start = time.perf_counter()
            process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
            _, status, usage = os.wait4(process.pid, 0)  # this child's own resource use
            seconds = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            output, errors = out.read(), err.read()
    if process.returncode != 0:
        raise RuntimeError(f"oneword learn failed ({process.returncode}): {errors[-2000:]}")
    peak_mb = round(usage.ru_maxrss / 1024, 1)  # Linux reports KB
    learned = re.search(r"learned <mochi> in (\d+) steps \(([^)]*)\)", output)
    note = ("wall time of the whole command: start-up, model load and learning"
            + (f"; capped at {plan.ti_steps} steps by the {plan.name} plan"
               if plan.ti_steps else ""))
    ours = Side(f"python -m oneword learn, default threads, no OMP_* set, "
                f"<= {plan.ti_steps or ConceptSettings().steps} steps", seconds, [seconds],
                {"peak_rss_mb": peak_mb, "rss_growth_mb": peak_mb},  # a process of its own
                {"steps": int(learned[1]) if learned else None,
                 "stopped": learned[2] if learned else None,
                 "target_seconds": CLI_LEARN_TARGET_SECONDS}, note=note)
    return stage(ours, None)


def run_speed(model: DiffusionModel, checker, plan: Plan, cache: ConceptCache | None,
              log: Callable[[str], None] = print) -> dict:
    """The speed section of the report: every stage, ours beside the reference."""
    image, text, scene = speed_photo()
    ours_inv, reference_inv = inversion_settings(plan)
    stages: dict[str, dict] = {}

    log("speed: inversions")
    ddim, _ = time_inversion(model, image, text, "ddim", ours_inv, plan.repeats)
    fast, _ = time_inversion(model, image, text, "fast", ours_inv, plan.repeats)
    direct, direct_inversion = time_inversion(model, image, text, "direct", ours_inv,
                                              plan.repeats)
    nti, nti_inversion = time_inversion(model, image, text, "null-text", ours_inv,
                                        plan.slow_repeats)
    if reference_inv == ours_inv:
        reference = replace(nti)
        nti.note = "our defaults are the reference settings: measured once"
    else:
        reference, _ = time_inversion(model, image, text, "null-text", reference_inv,
                                      plan.slow_repeats)
    stages["ddim_inversion"] = stage(ddim, reference)
    stages["null_text_inversion"] = stage(nti, reference)
    stages["fast_inversion"] = stage(fast, reference)
    stages["direct_inversion"] = stage(direct, reference)

    log("speed: one edit and one sticker")
    editor = Editor(model, None, ours_inv, EditSettings(), "null-text")
    circle = scene.object_at("left")
    truth = render(with_object(scene, "left", replace(circle, kind="square")), model.image_size)
    for name, inversion in (("edit", nti_inversion), ("edit_direct", direct_inversion)):
        timing, outcome = time_runs(lambda inv=inversion: editor.run(inv, EDIT_COMMAND),
                                    plan.repeats, model.device, unet=model.unet)
        stages[name] = stage(Side(f"prompt-to-prompt on the {inversion.mode} inversion, "
                                  f"{ours_inv.steps} steps", timing.median, timing.runs,
                                  timing.memory,
                                  {"edit_psnr_db": round(psnr(outcome.image, truth.image), 3)},
                                  evaluations=timing.evaluations), None)
    segmenter = load_segmenter(model.source)
    timing, _ = time_runs(lambda: make_sticker(model, image, text, segmenter=segmenter),
                          plan.repeats, model.device, unet=model.unet)
    how = "segmenter" if segmenter is not None else "attention"
    stages["sticker"] = stage(Side(f"{how} cut-out, cropped, {STICKER_SIDE} px", timing.median,
                                   timing.runs, timing.memory,
                                   {"mask_iou": sticker_iou(outlined(*cut_out(
                                       model, image, text, segmenter)), scene)},
                                   evaluations=timing.evaluations), None)

    stages["learn_concept"] = learn_stage(model, checker, plan, cache, log)
    stages["cli_learn"] = cli_learn_stage(model, plan, log)
    return {"device": str(model.device), "photo": text,
            "inversion_settings": {"ours": asdict(ours_inv), "reference": asdict(reference_inv)},
            "stages": {name: stages[name] for name in STAGES}}
