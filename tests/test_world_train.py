"""The sticker-world trainer's recipe on resume: a checkpoint's own recipe, unless told."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from world.train import TrainConfig, run_config


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
