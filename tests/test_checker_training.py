"""The checker's trainer: it can start from a shipped captioner, learn from what a model's VAE
gives back (on the bundled model's own VAE), and sees near misses of the reserved concepts as
often as the concepts themselves."""

from __future__ import annotations

import random

import numpy as np
import torch

from engine.model import BUNDLED_MODEL
from world.checker import DEFAULT_FOLDER, Checker, uint8_to_tensor, vae_round_trip
from world.render import render
from world.scene import (
    RESERVED_CREATURE,
    RESERVED_HUE_TOLERANCE,
    Scene,
    is_reserved_creature,
    near_miss_creature,
    near_miss_object,
    reserved_creature,
    reserved_object,
)
from world.train_checker import CheckerTrainConfig, CheckerTrainer, training_scene


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
    assert all(torch.equal(value, shipped[key])
               for key, value in trainer.net.state_dict().items())

    trainer.run(minutes=0)  # renders the pool and its round trips, trains no step, exports
    assert trainer.step == 0 and (tmp_path / "out" / "model.safetensors").exists()
    assert np.array_equal(trainer.round_trips, vae_round_trip(trainer.images, BUNDLED_MODEL))

    def drawn_from(pool: np.ndarray, fraction: float) -> bool:
        trainer.cfg.vae_fraction = fraction
        x, _ = trainer.batch()
        return any(torch.equal(x[0], image) for image in uint8_to_tensor(pool))

    assert drawn_from(trainer.round_trips, 1.0) and not drawn_from(trainer.images, 1.0)
    assert drawn_from(trainer.images, 0.0) and not drawn_from(trainer.round_trips, 0.0)


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
