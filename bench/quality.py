"""Edit quality on a fixed held-out set of sticker-world edits, against exact ground truth.

Each edit starts from a rendered scene, runs one bot command (replace with a word, replace with
a reserved concept, add, remove, restyle) through the engine's Editor, and is compared with the
edited scene description rendered by the same renderer with the same seed, so the background is
pixel-identical wherever the edit should not reach. Every edit is run after each inversion mode.

Measured per edit:
- background preservation: PSNR and SSIM against the ground truth outside the edited region
  (the union of the ground-truth masks of the old and the new object, dilated a little); a
  restyle changes every pixel, so there the region is empty and the whole picture is compared;
- the edit itself: PSNR of the whole picture against the ground truth, and whether the checker
  reads the intended change (object right / concept recognised / removed object gone / style);
- per scene and mode, the reconstruction PSNR of the inversion (the edit's source branch, which
  prompt-to-prompt leaves untouched).
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from PIL import Image, ImageFilter

from bench.concepts import concept_name
from engine.concepts import Concept
from engine.config import EditSettings, InversionSettings
from engine.errors import PromptError
from engine.faces import PersonFinder
from engine.inversion import MODES, reconstruct
from engine.metrics import psnr
from engine.model import DiffusionModel
from engine.operations import Editor, EditRequest, inversion_mode_for
from oneword.jobs import ConceptKind
from oneword.settings import Settings
from world.render import Rendering, render
from world.scene import (
    BACKGROUNDS,
    COLOURS,
    POSITIONS,
    RESERVED_STYLE,
    SHAPES,
    SIZES,
    Scene,
    WorldObject,
    caption,
    reserved_creature,
    reserved_object,
)

EDIT_KINDS = ("replace-word", "replace-concept", "add", "remove", "restyle")
EDITS_PER_SCENE = len(EDIT_KINDS)
SUCCESS_MEANING = {
    "replace-word": "the new shape, in the old colour, read at the old object's place",
    "replace-concept": "the reserved concept recognised at the old object's place",
    "add": "the reserved concept recognised at the free place",
    "remove": "nothing read at the removed object's place",
    "restyle": "the reserved style recognised",
}


# ---------------------------------------------------------------------------------------------
# The edit set


@dataclass(frozen=True)
class BenchEdit:
    """One held-out edit: the photo's scene, the command, and the scene it should become."""

    index: int
    kind: str
    scene_index: int
    source: Scene
    target: Scene
    command: EditRequest
    changed: tuple[str, ...]  # positions whose object changes; empty: the whole picture
    concept: str | None = None  # the reserved concept it puts in: creature, object or style


def source_scene(index: int) -> Scene:
    """The index-th source scene: 1 (every fourth scene) or 2 distinct plain shapes, unstyled.

    Plain shapes (no characters, no patterns) of distinct kinds keep every command unambiguous
    ("replace circle ..." names exactly one object) and the ground truth exact; one-object
    scenes keep some edits short enough for models that read few tokens.
    """
    rng = random.Random(f"bench-edit-scene-{index}")
    count = 1 if index % 4 == 0 else 2
    positions = sorted(rng.sample(tuple(POSITIONS), count), key=POSITIONS.__getitem__)
    kinds = rng.sample(SHAPES, count)
    objects = []
    for position, kind in zip(positions, kinds, strict=True):
        colour = rng.choice(tuple(COLOURS))
        rgb = tuple(max(0, min(255, c + rng.randint(-12, 12))) for c in COLOURS[colour])
        jitter = (rng.uniform(-0.03, 0.03), rng.uniform(-0.06, 0.06), rng.uniform(0.9, 1.1))
        objects.append(WorldObject(kind, colour, rng.choice(tuple(SIZES)), position, rgb, jitter))
    return Scene(tuple(objects), rng.choice(BACKGROUNDS), None, rng.randrange(1 << 30))


def with_object(scene: Scene, position: str, obj: WorldObject | None) -> Scene:
    """The scene with the object at `position` replaced by `obj` (None: removed)."""
    kept = [o for o in scene.objects if o.position != position]
    if obj is not None:
        kept.append(obj)
    return replace(scene, objects=tuple(sorted(kept, key=lambda o: POSITIONS[o.position])))


def reserved_at(which: str, size: str, position: str) -> WorldObject:
    """The reserved creature or object at a place."""
    make = reserved_creature if which == "creature" else reserved_object
    return make(size, position)


def scene_edits(index: int) -> list[BenchEdit]:
    """The five edits of the index-th source scene, one of each kind.

    Which object is replaced or removed, the new shape, the free place and which reserved
    concept goes in alternate with the index. An added concept's caption names no size, so its
    ground truth is the big one (as most of the concept's sample photos show it).
    """
    scene = source_scene(index)
    rng = random.Random(f"bench-edit-{index}")
    objects, n = scene.objects, len(scene.objects)
    first = index * EDITS_PER_SCENE
    swapped_in, added = ("creature", "object") if index % 2 == 0 else ("object", "creature")
    edits = []

    old = objects[index % n]
    new_kind = rng.choice([k for k in SHAPES if k not in {o.kind for o in objects}])
    edits.append(BenchEdit(first, "replace-word", index, scene,
                           with_object(scene, old.position, replace(old, kind=new_kind)),
                           EditRequest("replace", subject=old.kind, concept=new_kind),
                           (old.position,)))

    old = objects[(index + 1) % n]
    new = replace(reserved_at(swapped_in, old.size, old.position), jitter=old.jitter)
    edits.append(BenchEdit(first + 1, "replace-concept", index, scene,
                           with_object(scene, old.position, new),
                           EditRequest("replace", subject=old.kind,
                                       concept=concept_name(swapped_in)),
                           (old.position,), swapped_in))

    free = rng.choice([p for p in POSITIONS if scene.object_at(p) is None])
    edits.append(BenchEdit(first + 2, "add", index, scene,
                           with_object(scene, free, reserved_at(added, "big", free)),
                           EditRequest("add", concept=concept_name(added), position=free),
                           (free,), added))

    old = rng.choice(objects)
    edits.append(BenchEdit(first + 3, "remove", index, scene,
                           with_object(scene, old.position, None),
                           EditRequest("remove", subject=old.kind), (old.position,)))

    edits.append(BenchEdit(first + 4, "restyle", index, scene,
                           replace(scene, style=RESERVED_STYLE),
                           EditRequest("restyle", concept=concept_name("style")), (), "style"))
    return edits


def bot_mode(edit: BenchEdit, settings: Settings | None = None) -> str:
    """The inversion mode the worker inverts the photo in for this edit, by its settings (the
    defaults when None): the benchmark's concepts are learned things (a style for restyle)."""
    settings = settings or Settings()
    kind = {"creature": ConceptKind.OBJECT, "object": ConceptKind.OBJECT,
            "style": ConceptKind.STYLE}.get(edit.concept or "")
    return inversion_mode_for(edit.command, kind, settings.inversion_mode,
                              settings.learned_replace_inversion_mode or settings.inversion_mode)


def edit_set(scenes: int = 20) -> list[BenchEdit]:
    """The fixed held-out set: `scenes` source scenes, five edits each (100 for 20 scenes)."""
    return [edit for index in range(scenes) for edit in scene_edits(index)]


# ---------------------------------------------------------------------------------------------
# Metrics


def edited_region(source: Rendering, target: Rendering, positions: Sequence[str],
                  dilate: int | None = None) -> np.ndarray:
    """Boolean (H, W) mask of where an edit may change the picture.

    The union of the ground-truth masks of the old object (in the source) and the new one (in
    the target) at the changed positions, dilated by `dilate` pixels (default: 1/32 of the
    side) so that anti-aliased edges and small misplacements count as inside.
    """
    side = source.image.size[0]
    region = np.zeros((side, side), bool)
    for position in positions:
        for rendering in (source, target):
            if position in rendering.masks:
                region |= rendering.masks[position] > 0.02
    dilate = max(1, round(side / 32)) if dilate is None else dilate
    if dilate > 0 and region.any():
        grown = Image.fromarray(region.astype(np.uint8) * 255).filter(
            ImageFilter.MaxFilter(2 * dilate + 1))
        region = np.asarray(grown) > 127
    return region


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The normalised 1-D Gaussian of SSIM's reference implementation (11 taps, sigma 1.5)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    w = np.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def _blur(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter of an (H, W, C) array, edges reflected, same size out."""
    r = len(window) // 2
    out = np.pad(image, ((r, r), (0, 0), (0, 0)), mode="reflect")
    out = sum(w * out[k:k + image.shape[0]] for k, w in enumerate(window))
    out = np.pad(out, ((0, 0), (r, r), (0, 0)), mode="reflect")
    return sum(w * out[:, k:k + image.shape[1]] for k, w in enumerate(window))


def ssim_map(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (Wang et al. 2004) of two 8-bit images, averaged over colour channels.

    SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
    with local means, variances and covariance under an 11-tap Gaussian window (sigma 1.5),
    C1 = (0.01 L)^2, C2 = (0.03 L)^2 and L = 255. Edges are reflected so the map has the
    image's size and can be averaged over any region. Identical images give 1 everywhere.
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    window = gaussian_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    var_x = _blur(x * x, window) - mu_x**2
    var_y = _blur(y * y, window) - mu_y**2
    cov = _blur(x * y, window) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim.mean(axis=-1)


def ssim(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray,
         mask: np.ndarray | None = None) -> float:
    """Mean SSIM over the pixels where `mask` is True (default: the whole image)."""
    values = ssim_map(a, b)
    if mask is not None:
        values = values[mask]
    return float(values.mean()) if values.size else 1.0


def edit_succeeded(edit: BenchEdit, reading) -> bool:
    """Whether the checker's reading of the edited image shows the intended change."""
    from world.checker import shows_reserved

    position = edit.changed[0] if edit.changed else None
    if edit.kind == "replace-word":
        want, seen = edit.target.object_at(position), reading.object_at(position)
        return seen is not None and (seen.kind, seen.colour) == (want.kind, want.colour)
    if edit.kind in ("replace-concept", "add"):
        return shows_reserved(reading, edit.concept, position)
    if edit.kind == "remove":
        return reading.object_at(position) is None
    return shows_reserved(reading, "style")


# The parts of the reserved object that make its shape and pattern: a replace or add that reads
# only its colours (an orange and blue smear) is not the striped diamond.
SHAPE_AND_PATTERN = ("kind", "pattern")


def reserved_parts_at(edit: BenchEdit, reading) -> dict[str, bool] | None:
    """For an edit that puts a reserved thing in (replace-concept, add): which of its parts
    the checker reads at the edit's place (world.checker.reserved_parts); None otherwise."""
    from world.checker import reserved_parts

    if edit.kind not in ("replace-concept", "add") or edit.concept not in ("creature", "object"):
        return None
    return reserved_parts(reading, edit.concept, edit.changed[0])


def shape_and_pattern_right(edit: BenchEdit, reading) -> bool | None:
    """For an edit that puts the reserved patterned object in: whether the checker reads its
    shape and its pattern (a striped diamond) at the edit's place, whatever the colours; None
    for other edits. The figure that tells a drawn object from its colours alone."""
    if edit.concept != "object":
        return None
    parts = reserved_parts_at(edit, reading)
    return None if parts is None else all(parts[name] for name in SHAPE_AND_PATTERN)


def size_right(edit: BenchEdit, reading) -> bool | None:
    """For an edit that puts a thing in (replace, add): whether the checker reads something at
    its place at the size its truth has; None for other edits."""
    if edit.kind not in ("replace-word", "replace-concept", "add"):
        return None
    position = edit.changed[0]
    seen = reading.object_at(position)
    return seen is not None and seen.size == edit.target.object_at(position).size


# ---------------------------------------------------------------------------------------------
# Running the set


@dataclass
class EditScore:
    """The measurements of one edit after one inversion mode."""

    index: int
    kind: str
    mode: str
    background_psnr_db: float
    background_ssim: float
    edit_psnr_db: float
    seconds: float
    success: bool | None = None  # None without a checker
    # whether the checker reads the new object at the size the truth has (an add or replace)
    size_right: bool | None = None
    # a reserved thing put in: which of its parts the checker reads at its place
    parts: dict[str, bool] | None = None
    # the reserved object put in: its shape and pattern read there (SHAPE_AND_PATTERN)
    shape_and_pattern: bool | None = None
    # the share of the picture the edit's mask lets it change (`as_sent` edits with a mask)
    mask_share: float | None = None


@dataclass
class QualityRun:
    """Everything measured on the edit set."""

    scores: list[EditScore] = field(default_factory=list)
    reconstruction: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    inversion_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    skipped: list[dict] = field(default_factory=list)


def run_edits(model: DiffusionModel, checker, concepts: Sequence[Concept], edits: list[BenchEdit],
              steps: int, log: Callable[[str], None] = print,
              modes: Sequence[str] = MODES, as_sent: bool = False,
              people: PersonFinder | None = None) -> QualityRun:
    """Invert every source scene with each of `modes`, run its edits and measure them.

    `as_sent`: each edit is given the photo, as the worker gives it, so the result is what the
    user receives (the photo's own pixels outside the edit's mask); else the model's output.
    `people`: what finds the people in a photo (face detector, segmenter), as the worker's
    editor has it, for edits that put a person among them.
    An edit whose prompts the model cannot read (too many tokens for a small text encoder) is
    skipped and listed rather than failing the run.
    """
    settings = InversionSettings(steps=steps)
    size = model.image_size
    by_scene: dict[int, list[BenchEdit]] = defaultdict(list)
    for edit in edits:
        by_scene[edit.scene_index].append(edit)
    run = QualityRun()
    for mode in modes:
        editor = Editor(model, None, settings, EditSettings(), mode,
                        faces=people.faces if people else None,
                        segmenter=people.segmenter if people else None)
        judged: list[tuple[BenchEdit, EditScore, Image.Image]] = []
        for number, group in enumerate(by_scene.values(), start=1):
            source = render(group[0].source, size)
            start = time.perf_counter()
            inversion = editor.prepare(source.image, caption(group[0].source))
            run.inversion_seconds[mode].append(time.perf_counter() - start)
            reconstruction = None
            for edit in group:
                start = time.perf_counter()
                try:
                    outcome = editor.run(inversion, edit.command, concepts,
                                         photo=source.image if as_sent else None)
                except PromptError as exc:
                    run.skipped.append({"index": edit.index, "kind": edit.kind, "mode": mode,
                                        "reason": str(exc)})
                    continue
                seconds = time.perf_counter() - start
                if reconstruction is None:
                    reconstruction = outcome.result.reconstruction
                target = render(edit.target, size)
                keep = ~edited_region(source, target, edit.changed)
                score = EditScore(edit.index, edit.kind, mode,
                                  psnr(outcome.image, target.image, keep),
                                  ssim(outcome.image, target.image, keep),
                                  psnr(outcome.image, target.image), seconds)
                if outcome.mask is not None:
                    score.mask_share = float((outcome.mask > 0).mean())
                run.scores.append(score)
                judged.append((edit, score, outcome.image))
            if reconstruction is None:
                reconstruction = reconstruct(model, inversion)
            run.reconstruction[mode].append(psnr(source.image, reconstruction))
            log(f"quality: {mode} scene {number}/{len(by_scene)} done")
        if checker is not None and judged:
            for (edit, score, _), reading in zip(judged, checker.read([j[2] for j in judged]),
                                                 strict=True):
                score.success = edit_succeeded(edit, reading)
                score.size_right = size_right(edit, reading)
                score.parts = reserved_parts_at(edit, reading)
                score.shape_and_pattern = shape_and_pattern_right(edit, reading)
    return run


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def summarise(run: QualityRun) -> dict:
    """Means per edit kind (and over all kinds) per inversion mode, per-mode reconstruction,
    and per mode the share of the object's replace-concept edits right in shape and pattern."""
    table: dict[str, dict[str, dict]] = {}
    for kind in (*EDIT_KINDS, "all"):
        table[kind] = {}
        for mode in MODES:
            rows = [s for s in run.scores if s.mode == mode and kind in (s.kind, "all")]
            judged = [s.success for s in rows if s.success is not None]
            table[kind][mode] = {
                "n": len(rows),
                "skipped": sum(1 for s in run.skipped if s["mode"] == mode
                               and kind in (s["kind"], "all")),
                "background_psnr_db": _mean([s.background_psnr_db for s in rows]),
                "background_ssim": _mean([s.background_ssim for s in rows]),
                "edit_psnr_db": _mean([s.edit_psnr_db for s in rows]),
                "success": _mean([float(ok) for ok in judged]) if judged else None,
                "seconds_per_edit": _mean([s.seconds for s in rows]),
            }
    shapes = {}
    for mode in MODES:
        judged = [s.shape_and_pattern for s in run.scores if s.mode == mode
                  and s.kind == "replace-concept" and s.shape_and_pattern is not None]
        shapes[mode] = {"n": len(judged),
                        "share": _mean([float(ok) for ok in judged]) if judged else None}
    reconstruction = {mode: {"psnr_db": _mean(run.reconstruction[mode]),
                             "seconds_per_inversion": _mean(run.inversion_seconds[mode]),
                             "n": len(run.reconstruction[mode])} for mode in MODES}
    return {"by_kind": table, "reconstruction": reconstruction, "shape_and_pattern": shapes}


def run_quality(model: DiffusionModel, checker, concepts: Sequence[Concept], scenes: int,
                steps: int, log: Callable[[str], None] = print) -> dict:
    """The quality section of the report: the edit set, its settings and the summary."""
    edits = edit_set(scenes)
    log(f"quality: {len(edits)} edits from {scenes} scenes x {len(MODES)} modes, {steps} steps")
    run = run_edits(model, checker, concepts, edits, steps, log)
    return {"edits": len(edits), "scenes": scenes, "steps": steps,
            "kinds": list(EDIT_KINDS), "modes": list(MODES),
            "bot_modes": {kind: bot_mode(next(e for e in edits if e.kind == kind))
                          for kind in EDIT_KINDS},
            "success_means": SUCCESS_MEANING,
            "inversion_settings": asdict(InversionSettings(steps=steps)),
            "edit_settings": asdict(EditSettings()), "checker": checker is not None,
            **summarise(run), "skipped": run.skipped,
            "edits_detail": [asdict(s) for s in run.scores]}
