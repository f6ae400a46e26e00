"""The checker's trainer: it can start from a shipped captioner (also one without the heads of
fields added since), learn from what a model's VAE gives back (on the bundled model's own VAE),
sees near misses of the reserved concepts as often as the concepts themselves, and sees enough
faces (group photos) to learn their identity parts."""

from __future__ import annotations

import random

import numpy as np
import torch

from engine.model import BUNDLED_MODEL
from world.checker import (
    DEFAULT_FOLDER,
    SLOT_FIELDS,
    Checker,
    uint8_to_tensor,
    vae_round_trip,
)
from world.render import render
from world.scene import (
    FACE_ONLY,
    RESERVED_CREATURE,
    RESERVED_HUE_TOLERANCE,
    RESERVED_PERSON,
    Scene,
    is_reserved_creature,
    is_reserved_person,
    near_miss_creature,
    near_miss_object,
    reserved_creature,
    reserved_object,
)
from world.train_checker import (
    ROUND_TRIPS_FILE,
    CheckerTrainConfig,
    CheckerTrainer,
    kept_round_trips,
    training_scene,
)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / mse))


def test_a_vae_round_trip_gives_back_a_softened_copy():
    image = np.asarray(render(Scene((reserved_creature(),), "sand"), 64).image)[None]
    back = vae_round_trip(np.concatenate([image, image]), BUNDLED_MODEL)
    assert back.shape == (2, 64, 64, 3) and back.dtype == np.uint8
    assert np.array_equal(back[0], back[1])  # the latent's mean: the same picture each time
    assert 20 < psnr(back[0], image[0]) < 60  # close, but not the rendering itself


def test_a_checker_run_starts_from_a_captioner_and_mixes_in_round_trips(tmp_path):
    cfg = CheckerTrainConfig(run_dir=str(tmp_path / "run"), out=str(tmp_path / "out"), pool=6,
                      batch=12, eval_scenes=0, jpeg_probability=0.0, clean_fraction=1.0,
                      vae_model=str(BUNDLED_MODEL), init_from=str(DEFAULT_FOLDER))
    trainer = CheckerTrainer(cfg)
    shipped = Checker.load(DEFAULT_FOLDER).net.state_dict()
    own = trainer.net.state_dict()
    assert all(torch.equal(value, own[key]) for key, value in shipped.items())

    trainer.run(minutes=0)  # renders the pool and its round trips, trains no step, exports
    assert trainer.step == 0 and (tmp_path / "out" / "model.safetensors").exists()
    assert np.array_equal(trainer.round_trips, vae_round_trip(trainer.images, BUNDLED_MODEL))
    kept = tmp_path / "run" / ROUND_TRIPS_FILE  # a resumed session finds them there
    written = kept.stat().st_mtime_ns
    assert np.array_equal(kept_round_trips(trainer.images, str(BUNDLED_MODEL), kept),
                          trainer.round_trips) and kept.stat().st_mtime_ns == written
    other_pool = trainer.images[::-1].copy()
    assert np.array_equal(kept_round_trips(other_pool, str(BUNDLED_MODEL), kept),
                          vae_round_trip(other_pool, BUNDLED_MODEL))
    assert kept.stat().st_mtime_ns != written  # another pool: sent through the VAE again

    def drawn_from(pool: np.ndarray, fraction: float) -> bool:
        trainer.cfg.vae_fraction = fraction
        x, _ = trainer.batch()
        return any(torch.equal(x[0], image) for image in uint8_to_tensor(pool))

    assert drawn_from(trainer.round_trips, 1.0) and not drawn_from(trainer.images, 1.0)
    assert drawn_from(trainer.images, 0.0) and not drawn_from(trainer.round_trips, 0.0)


def test_a_run_starts_from_every_tensor_a_shipped_checker_shares(tmp_path):
    """Fields added since a checker was shipped (a face's identity parts) get fresh heads;
    every other tensor of the same name and shape comes from the shipped checker."""
    cfg = CheckerTrainConfig(run_dir=str(tmp_path / "run"), out=str(tmp_path / "out"))
    trainer = CheckerTrainer(cfg)
    fresh_init = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    shipped = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v + 1
               for k, v in fresh_init.items()
               if not any(k.startswith(f"slot_heads.{name}.") for name in FACE_ONLY)}
    shipped["slot_heads.eyes.weight"] = torch.zeros(7, 128)  # a field whose classes changed
    left_fresh = trainer.start_from(shipped)
    assert set(left_fresh) == {f"slot_heads.{name}.{p}" for name in FACE_ONLY
                               for p in ("weight", "bias")} | {"slot_heads.eyes.weight"}
    now = trainer.net.state_dict()
    for key, value in now.items():
        expected = fresh_init[key] if key in left_fresh else shipped[key]
        assert torch.equal(value, expected), key
    assert now["slot_heads.hair.weight"].shape == (len(SLOT_FIELDS["hair"]), 128)


def test_near_misses_differ_from_a_reserved_concept_in_exactly_one_part():
    rng = random.Random(0)
    r = RESERVED_CREATURE
    changed_parts = set()
    for _ in range(200):
        f = near_miss_creature(rng).features
        assert not is_reserved_creature(f)
        changed = [name for name in ("eyes", "ears", "mouth", "marks")
                   if getattr(f, name) != getattr(r, name)]
        hue_moved = abs(f.hue - r.hue) > RESERVED_HUE_TOLERANCE
        assert len(changed) + hue_moved == 1
        changed_parts.update(changed + ["hue"] * hue_moved)
    assert changed_parts == {"eyes", "ears", "mouth", "marks", "hue"}

    reserved = reserved_object()
    changed_parts = set()
    for _ in range(200):
        obj = near_miss_object(rng)
        changed = [name for name in ("kind", "rgb", "pattern", "pattern_rgb")
                   if getattr(obj, name) != getattr(reserved, name)]
        assert len(changed) == 1
        changed_parts.update(changed)
    assert changed_parts == {"kind", "rgb", "pattern", "pattern_rgb"}


def test_a_training_pool_holds_near_misses_as_often_as_reserved_concepts():
    def count(cfg: CheckerTrainConfig) -> tuple[int, int]:
        reserved = near = 0
        for i in range(3000):
            for obj in training_scene(i, cfg).objects:
                if obj.features is not None and obj.features.eye_size == RESERVED_CREATURE.eye_size:
                    reserved += is_reserved_creature(obj.features)
                    near += not is_reserved_creature(obj.features)
        return reserved, near

    reserved, near = count(CheckerTrainConfig(reserved_probability=0.05,
                                              near_miss_probability=0.05))
    assert 100 < reserved < 200 and 100 < near < 200  # about 3000 x 0.05, each
    assert count(CheckerTrainConfig(reserved_probability=0.05, near_miss_probability=0.0))[1] == 0


def test_a_training_pool_holds_the_reserved_person_its_near_misses_and_many_faces():
    def count(cfg: CheckerTrainConfig) -> tuple[int, int, int]:
        reserved = near = faces = 0
        for i in range(3000):
            for obj in training_scene(i, cfg).objects:
                if obj.kind != "face":
                    continue
                faces += 1
                person = is_reserved_person(obj.features)
                reserved += person
                # A near miss keeps all but one identity part of the reserved person.
                same = sum(getattr(obj.features, name) == getattr(RESERVED_PERSON, name)
                           for name in ("eyes", "mouth", *FACE_ONLY))
                near += not person and same >= 5 and obj.features.eye_size == 1.0
        return reserved, near, faces

    reserved, near, faces = count(CheckerTrainConfig(reserved_probability=0.05,
                                                     near_miss_probability=0.05))
    assert 100 < reserved < 200 and 100 < near < 200  # about 3000 x 0.05, each
    alone = count(CheckerTrainConfig(group_probability=0.0))[2]
    grouped = count(CheckerTrainConfig(group_probability=0.2))[2]
    assert alone > 500 and grouped > 2 * alone  # a scene has 1 in 8 a face, a group 2-3
