"""The absentee: the reserved person learned from her portraits and put into group photos.

The product's first use case is adding someone who was missing to a group photo. This part
learns the reserved person from her five sample portraits (as a user teaches her, the person
kind) with each of several learning seeds, then runs two edits on each of a fixed set of
rendered group photos of two faces: "add <person>", as a user asks it with no place named, and
"replace the face <at one face's place> with <person>". Each result is the picture the user
receives (the photo given to the editor, as the worker gives it: its own pixels outside the
edit's mask) and is compared with the edited scene rendered by the same renderer:

- recognised: the checker reads the reserved person, every identity part hers, at the free
  place (add) or at the replaced face's place (replace);
- background PSNR: against the truth outside the new face's true mask (and the replaced
  face's), dilated a little: everyone else kept;
- as big as the others: the checker reads the new face at the others' size;
- mask share: how much of the picture the edit's mask let it change (the rest is the photo's
  own pixels).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from bench.concepts import ConceptCache, concept_name, concept_shown, reserved_concept
from bench.options import Plan
from bench.quality import BenchEdit, run_edits, with_object
from bench.speed import concept_settings
from engine.errors import MixedPhotosError
from engine.faces import PersonFinder, load_face_finder
from engine.model import DiffusionModel
from engine.operations import EditRequest
from engine.segmentation import load_segmenter
from oneword.settings import Settings
from world.scene import (
    BACKGROUNDS,
    POSITIONS,
    SIZES,
    Scene,
    is_reserved_person,
    random_object,
    reserved_person,
)

PEOPLE_KINDS = {"add": "add", "replace": "replace-concept"}  # row name: the edit set's kind
FIGURES = ("recognised", "background_psnr_db", "size_right", "mask_share")
SUCCESS_MEANING = {
    "add": "the reserved person (all her identity parts) recognised at the free place",
    "replace": "the reserved person recognised at the replaced face's place",
}


def group_photo(index: int) -> Scene:
    """The index-th group photo: two faces of one size side by side at two of the three places,
    nothing else, unstyled; neither of them the reserved person."""
    rng = random.Random(f"bench-group-photo-{index}")
    positions = sorted(rng.sample(tuple(POSITIONS), 2), key=POSITIONS.__getitem__)
    size = rng.choice(tuple(SIZES))
    faces = []
    for position in positions:
        face = random_object(rng, position, identities=True)
        while face.kind != "face" or is_reserved_person(face.features):
            face = random_object(rng, position, identities=True)
        faces.append(replace(face, size=size))
    return Scene(tuple(faces), rng.choice(BACKGROUNDS), None, rng.randrange(1 << 30))


def group_edits(index: int) -> list[BenchEdit]:
    """The index-th group photo's two edits: the person added (no place named, so the free one)
    as big as the others, and the person in place of one face (the left one of even photos,
    the other of odd ones), that face's place named."""
    scene = group_photo(index)
    person = concept_name("person")
    size = scene.objects[0].size
    free = next(p for p in POSITIONS if scene.object_at(p) is None)
    old = scene.objects[index % 2]
    new = replace(reserved_person(old.size, old.position), jitter=old.jitter)
    return [
        BenchEdit(2 * index, PEOPLE_KINDS["add"], index, scene,
                  with_object(scene, free, reserved_person(size, free)),
                  EditRequest("add", concept=person), (free,), "person"),
        BenchEdit(2 * index + 1, PEOPLE_KINDS["replace"], index, scene,
                  with_object(scene, old.position, new),
                  EditRequest("replace", subject="face", concept=person, position=old.position),
                  (old.position,), "person"),
    ]


def people_row(model: DiffusionModel, checker, plan: Plan, seed: int,
               cache: ConceptCache | None, log: Callable[[str], None]) -> dict:
    """One learning seed: the person's recognition, learning steps and time, and per edit its
    share recognised (None without a checker), mean background PSNR and share as big as the
    others. Portraits the worker's check refuses (as showing different things) teach no word:
    the row says why, and nobody is recognised (no edit reaches the user)."""
    settings = replace(concept_settings(plan)[0], seed=seed)
    log(f"people: seed {seed}: the person (cached or learned)")
    try:
        learned = reserved_concept(model, "person", settings, cache)
    except MixedPhotosError as exc:
        log(f"people: seed {seed}: the portraits were refused: {exc}")
        nobody = {"n": 0, "recognised": 0.0, "background_psnr_db": None, "size_right": None,
                  "mask_share": None}
        return {"seed": seed, "steps": 0, "seconds": None, "cached": False, "shown": 0.0,
                "skipped": 0, "refused": str(exc), **{name: dict(nobody)
                                                      for name in PEOPLE_KINDS}}
    edits = [edit for index in range(plan.people_scenes) for edit in group_edits(index)]
    log(f"people: seed {seed}: {len(edits)} edits after {plan.people_mode} inversion")
    run = run_edits(model, checker, [learned.concept], edits, plan.quality_steps,
                    lambda _: None, modes=(plan.people_mode,), as_sent=True,
                    people=worker_people_finder(model))
    row: dict = {"seed": seed, "steps": learned.steps, "seconds": learned.seconds,
                 "cached": learned.cached, "shown": None, "skipped": len(run.skipped)}
    if checker is not None:
        row["shown"] = concept_shown(model, checker, learned.concept, "person",
                                     plan.concept_samples, plan.sample_steps)
    for name, kind in PEOPLE_KINDS.items():
        scores = [s for s in run.scores if s.kind == kind]
        row[name] = {"n": len(scores),
                     "recognised": _share([s.success for s in scores]),
                     "background_psnr_db": (float(np.mean([s.background_psnr_db
                                                           for s in scores]))
                                            if scores else None),
                     "size_right": _share([s.size_right for s in scores]),
                     "mask_share": _mean([s.mask_share for s in scores])}
    return row


def worker_people_finder(model: DiffusionModel) -> PersonFinder:
    """The people finder the worker's editor has with its default settings: the face detector
    `face_detector` names and the model folder's own segmenter."""
    settings = Settings()
    return PersonFinder(load_face_finder(settings.face_detector),
                        load_segmenter(model.source, settings.segmenter))


def _mean(values: list[float | None]) -> float | None:
    """The mean of the measured values (None: none measured)."""
    measured = [v for v in values if v is not None]
    return float(np.mean(measured)) if measured else None


def _share(values: list[bool | None]) -> float | None:
    """The share of True among the judged values (None: not judged)."""
    judged = [v for v in values if v is not None]
    return float(np.mean(judged)) if judged else None


def spread(rows: list[dict]) -> dict:
    """Mean, lowest and highest over the seeds of the recognition and of each edit's figures
    (a seed that did not measure one is left out of it)."""
    def over(values: list[float | None]) -> dict | None:
        values = [v for v in values if v is not None]
        return ({"mean": float(np.mean(values)), "min": float(min(values)),
                 "max": float(max(values))} if values else None)

    out: dict = {"shown": over([r["shown"] for r in rows])}
    for name in PEOPLE_KINDS:
        out[name] = {figure: over([r[name].get(figure) for r in rows]) for figure in FIGURES}
    return out


def run_people(model: DiffusionModel, checker, plan: Plan, cache: ConceptCache | None,
               log: Callable[[str], None] = print) -> dict:
    """The people section of the report: every seed's row and the spread over them."""
    rows = [people_row(model, checker, plan, seed, cache, log)
            for seed in range(plan.learning_seeds)]
    return {"seeds": plan.learning_seeds, "mode": plan.people_mode,
            "scenes": plan.people_scenes, "steps": plan.quality_steps,
            "success_means": SUCCESS_MEANING, "rows": rows, "spread": spread(rows)}
