"""The reserved concepts (creature, object, style, person), learned from the sample photos and
cached.

Learning a concept is the benchmark's costliest fixed step, and its result depends only on the
model's weights and the settings, so each concept is kept in `<results>/cache/<model hash>/`
(gitignored) under a name that also fingerprints the settings.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from engine.captioning import load_captioner
from engine.concept_tokens import concepts_in_use, expand_prompt
from engine.concepts import Concept, load_concept, save_concept
from engine.config import ConceptSettings
from engine.likeness import CaptionJudge
from engine.model import DiffusionModel
from engine.sampling import generate
from engine.self_check import learn_checked
from engine.textual_inversion import ConceptProgress, LearnedWord
from world.samples import SAMPLES_DIR
from world.scene import RESERVED

# The textual-inversion kind (prompt templates) each reserved concept is learned as.
CONCEPT_KINDS = {"creature": "object", "object": "object", "style": "style",
                 "person": "person"}
QUALITY_BAR = 0.8  # share of generations showing the concept: the model card's target


def concept_name(which: str) -> str:
    """The concept name the benchmark uses for a reserved concept, e.g. 'reserved-creature'."""
    return f"reserved-{which}"


def sample_photos(which: str) -> list[Image.Image]:
    """The shipped sample photos of a reserved concept, as listed in engine/samples/samples.json."""
    index = json.loads((SAMPLES_DIR / "samples.json").read_text())
    return [Image.open(SAMPLES_DIR / name).convert("RGB") for name in index[which]]


def model_hash(source: str, with_captioner: bool = False) -> str:
    """A short content hash of a model folder's files (the captioner's only `with_captioner`);
    a hub id's name.

    Concepts are only valid for the exact weights they were learned on, and the captioner's
    captions, masks and start words, so the cache is keyed by this hash with the captioner
    rather than by the folder's path or its modification times. The training record and the
    model card are left out: they describe the weights, and the card changes with every
    measurement written to it.
    """
    folder = Path(source)
    digest = hashlib.sha256()
    if not folder.is_dir():
        digest.update(source.encode())
        return digest.hexdigest()[:12]
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if (relative.startswith("captioner/") and not with_captioner
                or relative in ("training.json", "README.md")):
            continue
        digest.update(relative.encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:12]


def settings_hash(settings: ConceptSettings) -> str:
    """A short fingerprint of textual-inversion settings (part of a cached concept's name)."""
    text = json.dumps(asdict(settings), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclass
class LearnedConcept:
    """A reserved concept and how it was learned (read back from the cache if it was cached)."""

    which: str
    concept: Concept
    steps: int
    final_loss: float  # mean of the last (up to) 50 step losses
    seconds: float  # learning time when it was learned (not re-measured from the cache)
    cached: bool


def final_loss(losses: list[float], window: int = 50) -> float:
    """Mean of the last `window` step losses: single-step losses are too noisy to compare."""
    tail = losses[-window:]
    return float(np.mean(tail)) if tail else float("nan")


class ConceptCache:
    """Concept files under `<folder>/<which>-<settings hash>.safetensors` for one model."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.written: set[Path] = set()  # learned by this run, so not "cached" when read back

    def path(self, which: str, settings: ConceptSettings) -> Path:
        return self.folder / f"{which}-{settings_hash(settings)}.safetensors"

    def get(self, which: str, settings: ConceptSettings) -> LearnedConcept | None:
        path = self.path(which, settings)
        if not path.is_file():
            return None
        concept = load_concept(path)
        extra = concept.extra
        return LearnedConcept(which, concept, concept.steps,
                              float(extra.get("bench_final_loss", "nan")),
                              float(extra.get("bench_seconds", "nan")),
                              cached=path not in self.written)

    def put(self, learned: LearnedConcept, settings: ConceptSettings) -> None:
        learned.concept.extra.update(bench_final_loss=f"{learned.final_loss:.6f}",
                                     bench_seconds=f"{learned.seconds:.3f}")
        self.folder.mkdir(parents=True, exist_ok=True)
        path = save_concept(learned.concept, self.path(learned.which, settings))
        self.written.add(path)


def learn_reserved(model: DiffusionModel, which: str, settings: ConceptSettings,
                   step_times: list[float] | None = None) -> tuple[LearnedConcept, LearnedWord]:
    """Learn a reserved concept from its sample photos with the self-check the worker makes
    (on a model with a captioner); `step_times` collects the perf_counter time at the end of
    every step (for per-step extrapolation)."""
    if which not in RESERVED:
        raise ValueError(f"unknown reserved concept {which!r}")
    photos = sample_photos(which)

    def progress(_: ConceptProgress) -> None:
        if step_times is not None:
            step_times.append(time.perf_counter())

    captioner = load_captioner(model.source)
    judge = CaptionJudge(captioner) if captioner is not None else None
    start = time.perf_counter()  # learning and its self-check, as the worker does them
    result, _ = learn_checked(model, photos, concept_name(which), CONCEPT_KINDS[which],
                              settings, judge, progress=progress, captioner=captioner)
    seconds = time.perf_counter() - start
    learned = LearnedConcept(which, result.concept, result.steps, final_loss(result.losses),
                             seconds, cached=False)
    return learned, result


def reserved_concept(model: DiffusionModel, which: str, settings: ConceptSettings,
                     cache: ConceptCache | None) -> LearnedConcept:
    """The cached concept if there is one for these weights and settings, else learn it."""
    if cache is not None:
        found = cache.get(which, settings)
        if found is not None:
            return found
    learned, _ = learn_reserved(model, which, settings)
    if cache is not None:
        cache.put(learned, settings)
    return learned


def concept_prompt(model: DiffusionModel, concept: Concept, which: str) -> str:
    """The prompt that shows a concept, as the model card's figure words it."""
    token = expand_prompt(model, concept.token)
    if which == "style":
        return f"a big red circle on the left with sky background in {token} style"
    return f"a {token} on the left with sky background"


def concept_shown(model: DiffusionModel, checker, concept: Concept, which: str, samples: int,
                  steps: int) -> float:
    """Share of `samples` generations of the concept's prompt in which the checker sees it
    (the model card's concept figure, for a given concept rather than a freshly learned one)."""
    from world.checker import shows_reserved

    with concepts_in_use(model, [concept]):
        prompt = concept_prompt(model, concept, which)
        images = model.decode(generate(model, [prompt] * samples, steps=steps, seed=1))
    hits = [shows_reserved(reading, which, None if which == "style" else "left")
            for reading in checker.read(images)]
    return float(np.mean(hits))
