"""The sticker-world trainer: its recipe on resume (a checkpoint's own, unless told) and its
pools rendered on several processes."""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from world.scene import random_scene
from world.train import TrainConfig, rendered_parts, run_config


def saved_run(run_dir: Path, **fields: object) -> Path:
    """A run folder whose checkpoint was saved with ``fields`` changed from the defaults."""
    run_dir.mkdir()
    recipe = asdict(TrainConfig(run_dir=str(run_dir), export_dir="elsewhere", **fields))
    torch.save({"config": recipe}, run_dir / "state.pt")
    return run_dir


def test_a_fresh_run_takes_the_defaults(tmp_path):
    cfg = run_config(str(tmp_path / "new"))
    assert (cfg.single_pool, cfg.export_dir) == (TrainConfig.single_pool, TrainConfig.export_dir)


def test_a_resumed_run_keeps_its_own_recipe_without_flags(tmp_path):
    run = saved_run(tmp_path / "run", single_pool=6000, multi_pool=18000, bf16=False)
    cfg = run_config(str(run))
    assert (cfg.single_pool, cfg.multi_pool, cfg.bf16, cfg.export_dir) == (
        6000, 18000, False, "elsewhere")


def test_flags_override_the_saved_recipe(tmp_path):
    run = saved_run(tmp_path / "run", export_every=500)
    cfg = run_config(str(run), "out", overrides={"export_every": "250", "bf16": "false"})
    assert (cfg.export_every, cfg.bf16, cfg.export_dir) == (250, False, "out")


def test_an_unknown_field_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="no field 'pool'"):
        run_config(str(tmp_path / "new"), overrides={"pool": "3"})


def test_pools_render_the_same_on_several_processes():
    """Parallel rendering (a GPU run's pools) gives what one process gives, in order."""
    rng = random.Random(3)
    parts = [[random_scene(rng) for _ in range(3)] for _ in range(3)]
    alone = list(rendered_parts(parts, (16, 8), workers=1))
    together = list(rendered_parts(parts, (16, 8), workers=2))
    assert len(together) == len(parts)
    for (images, grids), (images2, grids2) in zip(alone, together, strict=True):
        assert [im.tobytes() for im in images] == [im.tobytes() for im in images2]
        assert all(torch.equal(a, b) for side in (16, 8)
                   for a, b in zip(grids[side], grids2[side], strict=True))
    assert any(grid.any() for _, grids in alone for grid in grids[16])  # masks were drawn
