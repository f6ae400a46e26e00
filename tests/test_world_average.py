"""Averaging exports of one run (world/average.py) on tiny random SD-architecture folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.model import load_model
from tests.tiny_model import make_tiny_model
from world.average import AverageError, average_exports, average_weights, main

UNET = Path("unet") / "diffusion_pytorch_model.safetensors"
TEXT = Path("text_encoder") / "model.safetensors"
VAE = Path("vae") / "diffusion_pytorch_model.safetensors"


def export(folder: Path, seed: int, step: int, vae_from: Path | None = None) -> Path:
    """A tiny model folder standing for a run's export at `step` (its VAE `vae_from`'s, as
    exports of one run share their VAE)."""
    make_tiny_model(folder, seed=seed)
    if vae_from is not None:
        shutil.copy(vae_from / VAE, folder / VAE)
    (folder / "training.json").write_text(json.dumps(
        {"vae_steps": 5, "unet_steps": step, "config": {"lr": 1e-4}}))
    return folder


@pytest.fixture(scope="module")
def run_exports(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("run")
    first = export(root / "export-100", seed=0, step=100)
    return [first, export(root / "export-200", seed=1, step=200, vae_from=first),
            export(root / "export-300", seed=2, step=300, vae_from=first)]


def test_the_average_holds_the_mean_weights_and_loads_as_a_model(run_exports, tmp_path):
    record = average_exports(run_exports, tmp_path / "soup")

    for part in (UNET, TEXT):
        states = [load_file(source / part) for source in run_exports]
        averaged = load_file(tmp_path / "soup" / part)
        name = next(iter(averaged))
        assert averaged.keys() == states[0].keys()
        assert torch.allclose(averaged[name], sum(s[name] for s in states) / 3, atol=1e-6)
        assert not torch.equal(averaged[name], states[0][name])
    vae, first_vae = load_file(tmp_path / "soup" / VAE), load_file(run_exports[0] / VAE)
    assert all(torch.equal(vae[name], first_vae[name]) for name in first_vae)
    assert record["averaged_from"] == [100, 200, 300]
    assert record["unet_steps"] == 300
    assert json.loads((tmp_path / "soup" / "training.json").read_text()) == record

    model = load_model(tmp_path / "soup", device="cpu")
    assert model.image_size == 32


def test_the_average_may_replace_one_of_its_sources(run_exports, tmp_path):
    sources = [shutil.copytree(source, tmp_path / source.name) for source in run_exports[:2]]
    expected = (load_file(sources[0] / UNET)["conv_out.bias"]
                + load_file(sources[1] / UNET)["conv_out.bias"]) / 2

    average_exports(sources, sources[0])

    assert torch.allclose(load_file(sources[0] / UNET)["conv_out.bias"], expected, atol=1e-7)
    assert not list(tmp_path.glob("tmp*")), "the folder built beside the output is left behind"


def test_exports_of_other_runs_are_refused_with_the_reason(run_exports, tmp_path):
    stranger = export(tmp_path / "other-run", seed=3, step=400)  # a VAE of its own
    with pytest.raises(AverageError, match="another vae"):
        average_exports([run_exports[0], stranger], tmp_path / "soup")
    assert not (tmp_path / "soup").exists()


def test_too_few_or_unexported_folders_are_refused(run_exports, tmp_path):
    with pytest.raises(AverageError, match="two or more"):
        average_exports(run_exports[:1], tmp_path / "soup")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AverageError, match="not an exported model folder"):
        average_exports([run_exports[0], tmp_path / "empty"], tmp_path / "soup")


def test_weights_of_other_names_or_shapes_are_refused():
    with pytest.raises(AverageError, match=r"w is \(2,\), the first export's \(3,\)"):
        average_weights([{"w": torch.zeros(3)}, {"w": torch.zeros(2)}])
    with pytest.raises(AverageError, match="other weights"):
        average_weights([{"w": torch.zeros(3)}, {"v": torch.zeros(3)}])


def test_the_command_says_why_it_cannot_average_and_writes_nothing(run_exports, tmp_path):
    with pytest.raises(SystemExit, match="world.average: give two or more exports"):
        main([str(run_exports[0]), "--out", str(tmp_path / "soup")])
    assert not (tmp_path / "soup").exists()
    main([*map(str, run_exports[:2]), "--out", str(tmp_path / "soup")])
    assert json.loads((tmp_path / "soup" / "training.json").read_text())["averaged_from"] == [
        100, 200]
