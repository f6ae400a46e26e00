"""Running the benchmark: load the model and checker, run the chosen parts, write the report."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from bench.measure import REPO_ROOT, Log, machine_info, now, versions
from bench.options import RUNS_FOLDER, Plan, chosen_parts, default_parts

if TYPE_CHECKING:  # the engine loads lazily, once the benchmark runs
    from engine.model import DiffusionModel


class BenchError(Exception):
    """Something the benchmark needs is missing; the message says what to do."""


def load_bench_model(source: str | None, device: str):
    """The model to measure: `source`, else the bundled one, with a clear error if absent."""
    from engine.errors import ModelLoadError
    from engine.model import BUNDLED_MODEL, load_model

    if source is None:
        if not (BUNDLED_MODEL / "model_index.json").is_file():
            raise BenchError(
                f"no bundled model at {BUNDLED_MODEL}: it is written by "
                "`python -m world.train` (any exported step will do, even a half-trained "
                "one), or pass --model DIR with a diffusers Stable Diffusion folder")
        source = str(BUNDLED_MODEL)
    try:
        return load_model(source, device=device)
    except ModelLoadError as exc:
        raise BenchError(str(exc)) from exc


def load_checker(folder: str | None, model_source: str) -> tuple[object | None, str]:
    """The checker from `folder`, else the model's captioner/ subfolder, and what was found.

    Returns (checker, its folder) or (None, why there is none). A model folder may be exported
    by a newer or older checker training than this code reads: such a checker is reported and
    the run goes on without recognition figures; only an explicit --checker must load.
    """
    from world.captioner import CAPTIONER_FOLDER
    from world.checker import CONFIG_FILE, WEIGHTS_FILE, Checker

    path = Path(folder) if folder else Path(model_source) / CAPTIONER_FOLDER
    if not ((path / WEIGHTS_FILE).is_file() and (path / CONFIG_FILE).is_file()):
        if folder:
            raise BenchError(f"no checker ({WEIGHTS_FILE} and {CONFIG_FILE}) in {path}")
        return None, "none beside the model"
    try:
        return Checker.load(path), str(path)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        reason = f"{path} could not be loaded ({type(exc).__name__}: {str(exc)[:160]})"
        if folder:
            raise BenchError(f"the checker in {reason}") from exc
        return None, reason


def describe_model(model: DiffusionModel, checker, checker_path: str) -> dict:
    """Where the model came from, its content hash, size and training state."""
    from bench.concepts import model_hash

    training_file = Path(model.source) / "training.json"
    training = {}
    if training_file.is_file():
        recorded = json.loads(training_file.read_text())
        training = {k: recorded[k] for k in ("vae_steps", "unet_steps", "averaged_from")
                    if k in recorded}
    return {"source": _shown(model.source), "hash": model_hash(model.source),
            "image_size": model.image_size, "dtype": str(model.dtype), "training": training,
            "checker": _shown(checker_path), "checker_loaded": checker is not None}


def _shown(path: str) -> str:
    """A path as the report shows it: relative to the repository when inside it."""
    candidate = Path(path)
    if candidate.is_absolute() and candidate.is_relative_to(REPO_ROOT):
        return str(candidate.relative_to(REPO_ROOT))
    return path


def quality_concepts(model: DiffusionModel, checker, plan: Plan, cache, log,
                     known_shown: dict[str, float] | None = None) -> tuple[list, dict]:
    """The three reserved concepts (cached or learned) and how well each is recognised.

    `known_shown` holds recognition rates already measured in this run (the speed part's
    creature, learned with the same settings), so they are not generated again.
    """
    from bench.concepts import concept_shown, reserved_concept
    from bench.speed import concept_settings

    settings, _ = concept_settings(plan)
    concepts, summary = [], {}
    for which in ("creature", "object", "style"):
        log(f"quality: concept {which}")
        learned = reserved_concept(model, which, settings, cache)
        shown = (known_shown or {}).get(which)
        if checker is not None and shown is None:
            shown = concept_shown(model, checker, learned.concept, which, plan.concept_samples,
                                  plan.sample_steps)
        concepts.append(learned.concept)
        summary[which] = {"shown": shown, "steps": learned.steps,
                          "final_loss": learned.final_loss, "seconds": learned.seconds,
                          "cached": learned.cached}
    return concepts, summary


def run(args: argparse.Namespace, log: Log | None = None, checker=None) -> int:
    """Run the benchmark the options describe; 0 on success, 2 with a message otherwise.

    `checker` overrides the one found beside the model (tests pass an untrained one).
    """
    log = log or Log()
    try:
        parts = chosen_parts(args)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    plan = (Plan.quick() if args.quick else Plan.full()).with_overrides(args)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, args.threads))
    try:
        return run_plan(args, plan, parts, log, checker)
    finally:
        torch.set_num_threads(threads)


def run_plan(args: argparse.Namespace, plan: Plan, parts: list[str], log: Log,
             checker=None) -> int:
    """Measure the parts, then write the report (`run` with the plan chosen)."""
    started = now()
    report: dict = {}
    try:
        if {"speed", "quality", "seeds", "people"} & set(parts):
            report.update(measure_model(args, plan, parts, log, checker))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if "gpu" in parts:
        from bench.gpu import run_gpu

        report["gpu"] = run_gpu(plan, args.gpu_dtype, log, getattr(args, "gpu_compile", False))
    if "queue" in parts:
        from bench.queue import run_queue

        report["queue"] = run_queue(plan.queue_jobs, plan.repeats, log)
    report["meta"] = {"date": started.isoformat(timespec="minutes"), "plan": asdict(plan),
                      "parts": parts, "machine": machine_info(), "versions": versions(),
                      "wall_seconds": round(log.elapsed, 1)}
    report = {"meta": report.pop("meta"), **report}
    from bench.report import write_report

    paths = write_report(report, args.out, report_name(plan, parts, report))
    log(f"done in {log.elapsed / 60:.1f} min; wrote " + ", ".join(str(p) for p in paths))
    return 0


def report_name(plan: Plan, parts: list[str], report: dict) -> str:
    """Where under the results folder a run's report goes, so that only complete runs replace
    the results the README links to.

    "latest" (and a dated copy in history/): the full plan, unchanged, of every default part
    with none skipped. "queue" or "gpu": the full plan of that part alone (the GPU's only where
    a GPU ran it). Anything else (--quick, another --only set, changed counts, the GPU part
    skipped for want of a GPU) goes beside them, to runs/ (not tracked by git).
    """
    complete = plan == Plan.full() and not report.get("gpu", {}).get("skipped")
    if complete and set(default_parts(quick=False)) <= set(parts):
        return "latest"
    if complete and parts in (["queue"], ["gpu"]):
        return parts[0]
    suffix = "" if parts == default_parts(plan.name == "quick") else "-" + "-".join(parts)
    return f"{RUNS_FOLDER}/{plan.name}{suffix}"


def measure_model(args: argparse.Namespace, plan: Plan, parts: list[str], log: Log,
                  checker=None) -> dict:
    """The speed, quality, seeds and people parts on the bundled (or given) model."""
    from bench.concepts import ConceptCache, model_hash

    model = load_bench_model(args.model, args.device)
    checker_path = "given by the caller"
    if checker is None:
        checker, checker_path = load_checker(args.checker, model.source)
    if checker is None:
        log(f"no checker ({checker_path}): recognition figures will read n/a")
    cache = ConceptCache(args.out / "cache" / model_hash(model.source, with_captioner=True))
    out: dict = {"model": describe_model(model, checker, checker_path)}
    if "speed" in parts:
        from bench.speed import run_speed

        out["speed"] = run_speed(model, checker, plan, cache, log)
    if "quality" in parts:
        from bench.quality import run_quality

        known = {}
        if "speed" in out:
            known["creature"] = out["speed"]["stages"]["learn_concept"]["ours"]["quality"]["shown"]
        concepts, summary = quality_concepts(model, checker, plan, cache, log, known)
        out["quality"] = run_quality(model, checker, concepts, plan.scenes, plan.quality_steps,
                                     log)
        out["quality"]["concepts"] = summary
    if "seeds" in parts:
        from bench.seeds import run_seeds

        out["seeds"] = run_seeds(model, checker, plan, cache, log)
    if "people" in parts:
        from bench.people import run_people

        out["people"] = run_people(model, checker, plan, cache, log)
    return out
