"""How far the learning seed alone moves the concept figures.

Learning a word is one random draw (which photos, crops, timesteps and noises each step sees).
On the bundled model, learning the same photos with another seed moved the reserved creature's
and object's edits by up to 0.4-0.6 of their success, more than any setting did, so the quality
part's figures (learned with seed 0) cannot tell a better setting from a luckier draw. This
part learns the creature and the patterned object with each of several seeds and runs their
concept edits (replace-concept and add, from the quality part's edit set) in one inversion
mode, and reports each seed's figures with their mean and range: compare settings or models
on the mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from bench.concepts import ConceptCache, concept_shown, reserved_concept
from bench.options import Plan
from bench.quality import BenchEdit, QualityRun, bot_mode, edit_set, run_edits
from bench.speed import concept_settings
from engine.model import DiffusionModel

# The style's word is left to the quality part: learning it takes 2-4x as long as a thing's.
SEED_CONCEPTS = ("creature", "object")
SEED_KINDS = ("replace-concept", "add")
# the object's replace-concept judged on its shape and pattern alone (bench.quality)
SHAPE_FIGURE = "replace-concept shape and pattern"
FIGURES = ("shown", *SEED_KINDS, SHAPE_FIGURE)


def seed_row(model: DiffusionModel, checker, plan: Plan, seed: int, cache: ConceptCache | None,
             log: Callable[[str], None]) -> dict:
    """One learning seed: each concept's recognition, learning steps and time, and the
    success of its replace-concept and add edits (None without a checker)."""
    settings = replace(concept_settings(plan)[0], seed=seed)
    log(f"seeds: seed {seed}: the {' and the '.join(SEED_CONCEPTS)} (cached or learned)")
    learned = {which: reserved_concept(model, which, settings, cache) for which in SEED_CONCEPTS}
    edits = [e for e in edit_set(plan.scenes) if e.kind in SEED_KINDS]
    concepts = [c.concept for c in learned.values()]
    run = QualityRun()
    for mode, some in edits_by_mode(edits, plan.seed_mode).items():
        log(f"seeds: seed {seed}: {len(some)} edits after {mode} inversion")
        run.scores += run_edits(model, checker, concepts, some, plan.quality_steps,
                                lambda _: None, modes=(mode,)).scores
    concept_of = {e.index: e.concept for e in edits}
    row: dict = {"seed": seed}
    for which, item in learned.items():
        cell = {"steps": item.steps, "seconds": item.seconds, "cached": item.cached,
                "shown": None}
        if checker is not None:
            cell["shown"] = concept_shown(model, checker, item.concept, which,
                                          plan.concept_samples, plan.sample_steps)
        for kind in SEED_KINDS:
            judged = [s.success for s in run.scores
                      if s.kind == kind and concept_of[s.index] == which and s.success is not None]
            cell[kind] = float(np.mean(judged)) if judged else None
        shapes = [s.shape_and_pattern for s in run.scores
                  if s.kind == "replace-concept" and concept_of[s.index] == which
                  and s.shape_and_pattern is not None]
        cell[SHAPE_FIGURE] = float(np.mean(shapes)) if shapes else None
        cell["counts"] = _counts(run.scores, concept_of, which)
        row[which] = cell
    return row


def edits_by_mode(edits: list[BenchEdit], mode: str | None) -> dict[str, list[BenchEdit]]:
    """The edits grouped by the inversion mode each runs after: `mode`, else the one the bot
    uses for its kind (bench.quality.bot_mode)."""
    out: dict[str, list[BenchEdit]] = {}
    for edit in edits:
        out.setdefault(mode or bot_mode(edit), []).append(edit)
    return out


def modes_used(mode: str | None) -> dict[str, str]:
    """The inversion mode of each kind's edits: `mode`, else the bot's for that kind."""
    return {kind: mode or bot_mode(next(e for e in edit_set(1) if e.kind == kind))
            for kind in SEED_KINDS}


def _counts(scores: list, concept_of: dict[int, str | None], which: str) -> dict:
    """Per edit kind, how many of the concept's edits were judged and, of those, how many the
    checker read as the concept, and how many read each of its parts at the edit's place."""
    out: dict = {}
    for kind in SEED_KINDS:
        judged = [s for s in scores if s.kind == kind and concept_of[s.index] == which
                  and s.success is not None]
        parts: dict[str, int] = {}
        for score in judged:
            for name, seen in (score.parts or {}).items():
                parts[name] = parts.get(name, 0) + int(seen)
        out[kind] = {"n": len(judged), "right": sum(int(s.success) for s in judged),
                     "parts": parts}
    return out


def spread(rows: list[dict]) -> dict:
    """Mean, lowest and highest of each concept's figures over the seeds."""
    out: dict = {}
    for which in SEED_CONCEPTS:
        out[which] = {}
        for figure in FIGURES:
            values = [r[which].get(figure) for r in rows if r[which].get(figure) is not None]
            out[which][figure] = ({"mean": float(np.mean(values)), "min": float(min(values)),
                                   "max": float(max(values))} if values else None)
    return out


def run_seeds(model: DiffusionModel, checker, plan: Plan, cache: ConceptCache | None,
              log: Callable[[str], None] = print) -> dict:
    """The seeds section of the report: every seed's row and the spread over them."""
    rows = [seed_row(model, checker, plan, seed, cache, log)
            for seed in range(plan.learning_seeds)]
    modes = modes_used(plan.seed_mode)
    mode = (f"{plan.seed_mode}" if plan.seed_mode else
            "the bot's (" + ", ".join(f"{kind} {m}" for kind, m in modes.items()) + ")")
    return {"seeds": plan.learning_seeds, "mode": mode, "modes": modes, "scenes": plan.scenes,
            "steps": plan.quality_steps, "concepts": list(SEED_CONCEPTS),
            "kinds": list(SEED_KINDS), "extra_figures": [SHAPE_FIGURE], "rows": rows,
            "spread": spread(rows)}
