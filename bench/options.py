"""The benchmark's command-line options and how much it measures (the full run or --quick).

Only argparse and dataclasses here: `oneword bench` builds its parser from this module without
loading torch.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from oneword.modes import INVERSION_MODES

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RUNS_FOLDER = "runs"  # under the results folder: quick, partial and skipped runs (not tracked)
PARTS = ("speed", "quality", "seeds", "people", "gpu", "queue")


@dataclass(frozen=True)
class Plan:
    """Counts and step numbers of one benchmark run.

    The full plan is sized to finish within about 30 minutes on a shared 2-core CPU with the
    bundled 64 px model (its learning seeds take about 9 of them, the person's seeds and group
    photos about 6); the quick plan is a smoke test of every code path in about a minute.
    """

    name: str  # "full" or "quick"
    repeats: int  # timed runs of a cheap stage (median reported), after one warm-up run
    slow_repeats: int  # timed runs of null-text inversion, the slowest timed stage
    speed_steps: int | None  # DDIM steps of the timed stages; None: the engine's defaults (50)
    ti_steps: int | None  # cap on our textual-inversion steps; None: ConceptSettings().steps
    ti_reference_steps: int  # steps of the 3000-step reference actually run, then extrapolated
    concept_samples: int  # generations per learned concept judged by the checker
    sample_steps: int  # DDIM steps of those generations
    scenes: int  # quality: source scenes of the fixed edit set (five edits each)
    quality_steps: int  # quality: DDIM steps of every inversion and edit
    learning_seeds: int = 4  # seeds: learning seeds of the creature and the object
    # seeds: the one inversion mode their edits run after; None: each kind after the mode the
    # worker's default settings choose for it (bench.quality.bot_mode)
    seed_mode: str | None = None
    people_scenes: int = 16  # people: group photos of two faces (an add and a replace each)
    people_mode: str = "direct"  # people: the inversion mode (the worker's default)
    queue_jobs: int = 400  # queue: jobs per measured run (bench/queue.py)

    @classmethod
    def full(cls) -> Plan:
        return cls("full", repeats=3, slow_repeats=2, speed_steps=None, ti_steps=None,
                   ti_reference_steps=50, concept_samples=12, sample_steps=25, scenes=20,
                   quality_steps=15)

    @classmethod
    def quick(cls) -> Plan:
        return cls("quick", repeats=1, slow_repeats=1, speed_steps=5, ti_steps=8,
                   ti_reference_steps=3, concept_samples=2, sample_steps=5, scenes=1,
                   quality_steps=5, learning_seeds=2, queue_jobs=40, people_scenes=1)

    def with_overrides(self, args: argparse.Namespace) -> Plan:
        """This plan with the counts given on the command line."""
        changes = {name: getattr(args, name)
                   for name in ("repeats", "scenes", "quality_steps", "people_scenes",
                                "learning_seeds", "seed_mode")
                   if getattr(args, name, None) is not None}
        return replace(self, **changes)


def add_options(parser: argparse.ArgumentParser) -> None:
    """Register the benchmark's options (shared by `python -m bench` and `oneword bench`)."""
    parser.add_argument("--quick", action="store_true",
                        help="a one-minute smoke run: tiny counts, written to runs/quick.md/json")
    parser.add_argument("--gpu", action="store_true",
                        help="also time an SD 1.5-sized random model at 512 px on the GPU "
                             "(skipped with a message when there is none)")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated parts to run, of {', '.join(PARTS)} "
                             "(default: speed,quality,seeds,people,queue, plus gpu with --gpu; "
                             "--quick "
                             "leaves out queue); --only queue writes queue.md/json alone")
    parser.add_argument("--model", default=None,
                        help="diffusers folder (default: the bundled engine/models/sticker-world)")
    parser.add_argument("--checker", default=None,
                        help="checker folder (default: the model's captioner/ subfolder)")
    parser.add_argument("--device", default="cpu",
                        help="device of the bundled-model benchmark (default: cpu)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: comparable between machines and "
                             "immune to oversubscription on a shared CPU)")
    parser.add_argument("--gpu-dtype", choices=("fp16", "bf16"), default="fp16",
                        help="precision of the GPU benchmark")
    parser.add_argument("--gpu-compile", action="store_true",
                        help="torch.compile the UNet in the GPU benchmark (slow first calls)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR,
                        help="results folder (default: bench/results)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per cheap stage")
    parser.add_argument("--scenes", type=int, default=None,
                        help="quality: source scenes, five edits each (full: 20)")
    parser.add_argument("--quality-steps", type=int, default=None,
                        help="quality: DDIM steps of inversions and edits (full: 15)")
    parser.add_argument("--learning-seeds", type=int, default=None,
                        help="seeds: learning seeds of the creature and the object (full: 4)")
    parser.add_argument("--seed-mode", default=None,
                        choices=INVERSION_MODES,
                        help="seeds: the one inversion mode their edits run after (default: "
                             "each kind after the mode the bot uses for it)")
    parser.add_argument("--people-scenes", type=int, default=None,
                        help="people: group photos, an add and a replace each (full: 16)")


def default_parts(quick: bool) -> list[str]:
    """The parts a run without --only measures (the queue only in the full plan)."""
    return ["speed", "quality", "seeds", "people"] + ([] if quick else ["queue"])


def chosen_parts(args: argparse.Namespace) -> list[str]:
    """The parts to run, in order; ValueError names an unknown one."""
    if args.only:
        parts = [p.strip() for p in args.only.split(",") if p.strip()]
    else:
        parts = default_parts(args.quick)
    if args.gpu and "gpu" not in parts:
        parts.append("gpu")
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    return [p for p in PARTS if p in parts]
