"""The benchmark (bench/): its quick mode end to end on the tiny model, its metrics, its edit set
and its GPU model, built at a tiny scale on the CPU. Nothing here asserts a speed."""

from __future__ import annotations

import argparse
import json
import math
import shutil
from collections import Counter
from dataclasses import asdict

import numpy as np
import pytest
import torch

from bench.gpu import (
    OPTIONS,
    SD15_PARAMETERS,
    build_sd15,
    learn_end_to_end,
    run_gpu,
    run_gpu_options,
    run_gpu_stages,
    sd15_configs,
)
from bench.measure import Log
from bench.options import RESULTS_DIR, Plan, add_options, chosen_parts
from bench.quality import (
    EDIT_KINDS,
    edit_set,
    edited_region,
    scene_edits,
    ssim,
    ssim_map,
)
from bench.runner import run
from bench.speed import STAGES
from engine.config import InversionSettings
from engine.inversion import MODES
from engine.metrics import psnr
from world.render import render


def bench_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser)
    return parser.parse_args(list(argv))


def untrained_checker():
    """A checker with random weights: its readings are arbitrary but exercise every path."""
    from world.checker import SCENE_FIELDS, SLOT_FIELDS, Checker, CheckerNet, NetConfig

    torch.manual_seed(0)
    net = CheckerNet(NetConfig(), {k: len(v) for k, v in SCENE_FIELDS.items()},
                     {k: len(v) for k, v in SLOT_FIELDS.items()})
    return Checker(net, SCENE_FIELDS, SLOT_FIELDS)


IDENTICAL_PSNR = 10 * math.log10(255**2 / 1e-10)  # PSNR's cap for identical pixels


def is_finite_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------------------------
# End to end


@pytest.mark.slow  # starts processes or runs a whole pipeline
def test_quick_benchmark_writes_every_stage_and_every_kind_by_mode(tiny_model_dir, tmp_path):
    args = bench_args("--quick", "--model", str(tiny_model_dir), "--out", str(tmp_path))
    assert run(args, Log(quiet=True), checker=untrained_checker()) == 0

    assert {p.name for p in tmp_path.iterdir()} == {"runs", "cache"}  # beside the results
    report = json.loads((tmp_path / "runs" / "quick.json").read_text())
    meta = report["meta"]
    assert meta["plan"]["name"] == "quick" and meta["date"]
    assert meta["machine"]["cpu"] and meta["machine"]["logical_cores"] >= 1
    assert is_finite_number(meta["machine"]["ram_gb"])
    for key in ("python", "torch", "diffusers", "transformers", "commit"):
        assert key in meta["versions"]

    stages = report["speed"]["stages"]
    assert list(stages) == list(STAGES)
    for name, row in stages.items():
        ours = row["ours"]
        assert is_finite_number(ours["seconds"]) and ours["seconds"] > 0, name
        assert is_finite_number(ours["peak_rss_mb"]), name
        assert ours["quality"] and all(is_finite_number(v) for k, v in ours["quality"].items()
                                       if k not in ("stopped", "reached_bar")), name
    for name in ("learn_concept", "ddim_inversion", "null_text_inversion", "fast_inversion",
                 "direct_inversion"):
        assert is_finite_number(stages[name]["reference"]["seconds"])
        assert is_finite_number(stages[name]["ratio"])
    steps = meta["plan"]["speed_steps"]
    evaluations = {name: row["ours"]["evaluations"] for name, row in stages.items()}
    assert evaluations["direct_inversion"]["unet_forward"] == steps  # one DDIM pass
    assert evaluations["direct_inversion"]["unet_backward"] == 0
    assert evaluations["null_text_inversion"]["unet_backward"] > 0
    assert evaluations["edit"]["unet_forward"] == 4 * steps
    assert evaluations["edit_direct"]["unet_forward"] == 3 * steps
    assert evaluations["learn_concept"]["unet_backward"] > 0
    assert stages["learn_concept"]["reference"]["extrapolated"]
    assert stages["learn_concept"]["reference"]["seconds"] > stages["learn_concept"][
        "reference"]["runs"][0]

    quality = report["quality"]
    for kind in EDIT_KINDS:
        for mode in MODES:
            cell = quality["by_kind"][kind][mode]
            assert cell["n"] >= 1, (kind, mode)
            for key in ("background_psnr_db", "background_ssim", "edit_psnr_db", "success",
                        "seconds_per_edit"):
                assert is_finite_number(cell[key]), (kind, mode, key)
            assert 0 <= cell["success"] <= 1
    for mode in MODES:
        assert is_finite_number(quality["reconstruction"][mode]["psnr_db"])
    assert set(quality["concepts"]) == {"creature", "object", "style"}

    seeds = report["seeds"]
    assert [row["seed"] for row in seeds["rows"]] == [0, 1]
    for which in ("creature", "object"):
        first, second = (row[which] for row in seeds["rows"])
        # seed 0 is the quality part's concept, read back rather than learned again
        assert first["seconds"] == pytest.approx(quality["concepts"][which]["seconds"], abs=1e-3)
        assert first["steps"] == quality["concepts"][which]["steps"]
        assert second["steps"] >= 1
        for row in seeds["rows"]:
            assert 0 <= row[which]["shown"] <= 1
    for kind in ("replace-concept", "add"):  # one scene: each kind puts in one of the two
        judged = [row[which][kind] for row in seeds["rows"] for which in ("creature", "object")
                  if row[which][kind] is not None]
        assert len(judged) == 2 and all(0 <= v <= 1 for v in judged), kind

    assert set(quality["shape_and_pattern"]) == set(MODES)  # one scene: no object replaced
    assert all(row["object"]["counts"]["add"]["n"] == 1 for row in seeds["rows"])

    text = (tmp_path / "runs" / "quick.md").read_text()
    assert "| stage | ours | reference | ratio (ref / ours) | quality ours |" in text
    assert "| edit | inversion | n | background PSNR | background SSIM" in text
    assert "| seed | creature: recognised | creature: replace-concept |" in text
    assert "| seed | recognised (concept figure) | add: recognised |" in text
    assert not (tmp_path / "latest.json").exists()  # a smoke run never replaces the results
    # the three reserved concepts, the creature and object again with seed 1, the person twice
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 7
    people = report["people"]
    assert [row["seed"] for row in people["rows"]] == [0, 1]
    assert all(0 <= row[name]["recognised"] <= 1 for row in people["rows"]
               for name in ("add", "replace"))


def test_the_seed_spread_skips_figures_a_seed_did_not_measure():
    from bench.seeds import spread

    def row(seed, creature_add, object_add):
        return {"seed": seed,
                "creature": {"shown": 0.5, "replace-concept": None, "add": creature_add},
                "object": {"shown": None, "replace-concept": None, "add": object_add}}

    out = spread([row(0, 0.25, 0.5), row(1, 0.75, None), row(2, 0.5, 0.1)])
    assert out["creature"]["add"] == {"mean": pytest.approx(0.5), "min": 0.25, "max": 0.75}
    assert out["object"]["add"] == {"mean": pytest.approx(0.3), "min": 0.1, "max": 0.5}
    assert out["creature"]["shown"]["mean"] == 0.5
    assert out["object"]["shown"] is None and out["creature"]["replace-concept"] is None


def test_the_seeds_table_shows_the_objects_shape_and_pattern_figure_where_measured():
    from bench.report import seeds_section
    from bench.seeds import SHAPE_FIGURE, spread

    def row(seed, shape):
        cell = {"shown": 0.5, "replace-concept": 0.25, "add": 0.5, "steps": 100,
                SHAPE_FIGURE: None}
        return {"seed": seed, "creature": dict(cell), "object": {**cell, SHAPE_FIGURE: shape}}

    rows = [row(0, 0.75), row(1, 0.25)]
    seeds = {"seeds": 2, "mode": "ddim", "scenes": 20, "steps": 15,
             "concepts": ["creature", "object"], "kinds": ["replace-concept", "add"],
             "extra_figures": [SHAPE_FIGURE], "rows": rows, "spread": spread(rows)}
    text = "\n".join(seeds_section(seeds))
    header = next(line for line in text.splitlines() if line.startswith("| seed"))
    assert header.count("shape and pattern") == 1  # the object's only
    assert "| object: replace-concept shape and pattern | object: steps |" in header
    assert "| 75% | 100 |" in text and "| 25% | 100 |" in text
    assert "| **mean** |" in text and "50% |  |" in text.split("**mean**")[1].splitlines()[0]
    assert "Shape and pattern:" in text
    without = dict(seeds, rows=[row(0, None)], spread=spread([row(0, None)]))
    assert "shape and pattern" not in "\n".join(seeds_section(without))


def test_the_report_names_the_training_state_and_an_averaged_model_its_steps():
    from bench.report import model_state

    averaged = {"unet_steps": 50000, "averaged_from": [44000, *range(45000, 50001, 1000)]}
    assert model_state(averaged) == "UNet steps 44000-50000 averaged (7 exports)"
    assert model_state({"vae_steps": 5000, "unet_steps": 44000}) == "UNet step 44000"
    assert model_state({}) == "training state unknown"


def test_a_missing_bundled_model_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("engine.model.BUNDLED_MODEL", tmp_path / "sticker-world")
    assert run(bench_args("--quick", "--out", str(tmp_path)), Log(quiet=True)) == 2
    assert "python -m world.train" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_checker_that_cannot_be_read_is_reported_not_fatal(tmp_path):
    from bench.runner import BenchError, load_checker

    captioner = tmp_path / "model" / "captioner"
    captioner.mkdir(parents=True)
    (captioner / "config.json").write_text("{}")
    (captioner / "model.safetensors").write_bytes(b"not weights")
    checker, why = load_checker(None, str(tmp_path / "model"))
    assert checker is None and "could not be loaded" in why
    assert load_checker(None, str(tmp_path)) == (None, "none beside the model")
    with pytest.raises(BenchError, match="could not be loaded"):
        load_checker(str(captioner), str(tmp_path / "model"))


def test_cached_concepts_are_keyed_by_the_captioner_that_helped_learn_them(tmp_path):
    from bench.concepts import model_hash

    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "weights").write_bytes(b"unet")
    (tmp_path / "captioner").mkdir()
    (tmp_path / "captioner" / "weights").write_bytes(b"old")
    before = model_hash(str(tmp_path)), model_hash(str(tmp_path), with_captioner=True)
    (tmp_path / "captioner" / "weights").write_bytes(b"new")
    after = model_hash(str(tmp_path)), model_hash(str(tmp_path), with_captioner=True)
    assert before[0] == after[0]  # the model's own weights are unchanged
    assert before[1] != after[1]  # but concepts learned with the old captioner are not reused
    (tmp_path / "README.md").write_text("figures measured today")
    assert model_hash(str(tmp_path)) == after[0]  # nor does the card's text change them


def test_oneword_bench_parses_the_benchmark_options():
    from cli.main import build_parser, run_bench

    args = build_parser().parse_args(["bench", "--quick", "--scenes", "3",
                                      "--people-scenes", "2"])
    assert args.run is run_bench and args.quick and args.scenes == 3
    assert Plan.quick().with_overrides(args).scenes == 3
    assert Plan.full().with_overrides(args).people_scenes == 2


# ---------------------------------------------------------------------------------------------
# Metrics


def test_ssim_of_identical_images_is_one_and_drops_with_noise():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    assert ssim(image, image) == pytest.approx(1.0)
    noisy = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(image + rng.normal(0, 60, image.shape), 0, 255).astype(np.uint8)
    assert 0 < ssim(image, noisier) < ssim(image, noisy) < 1
    assert ssim(image, noisy) == pytest.approx(ssim(noisy, image))


def test_ssim_of_flat_images_is_the_luminance_term():
    # No structure: variances and covariance vanish, leaving (2ab + C1) / (a^2 + b^2 + C1).
    a, b = np.full((16, 16, 3), 100, np.uint8), np.full((16, 16, 3), 150, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1)
    assert np.allclose(ssim_map(a, b), expected)


def test_masked_metrics_only_see_the_masked_pixels():
    a = np.zeros((16, 16, 3), np.uint8)
    b = a.copy()
    b[:, 8:] = 200  # the right half differs
    left = np.zeros((16, 16), bool)
    left[:, :3] = True  # far enough from the edge for SSIM's window to see only equal pixels
    assert psnr(a, b, left) == pytest.approx(IDENTICAL_PSNR)
    assert ssim(a, b, left) == pytest.approx(1.0)
    assert psnr(a, b) < 10 and ssim(a, b) < 0.9


# ---------------------------------------------------------------------------------------------
# The edit set


def test_the_edit_set_is_fixed_and_has_every_kind():
    edits = edit_set()
    assert edits == edit_set() and len(edits) >= 100
    assert Counter(e.kind for e in edits) == {kind: len(edits) // 5 for kind in EDIT_KINDS}
    assert [e.index for e in edits] == list(range(len(edits)))
    for edit in edits:
        assert edit.target != edit.source
        assert (edit.target.background, edit.target.seed) == (edit.source.background,
                                                              edit.source.seed)
        kinds = [o.kind for o in edit.source.objects]
        assert len(kinds) == len(set(kinds))  # a command's word names one object


def test_ground_truth_changes_only_the_edited_region():
    for edit in scene_edits(1)[:4]:  # every kind but restyle, which changes everything
        source, target = render(edit.source), render(edit.target)
        region = edited_region(source, target, edit.changed)
        assert region.any() and not region.all()
        assert psnr(source.image, target.image, ~region) == pytest.approx(IDENTICAL_PSNR), edit.kind




def test_shape_and_pattern_is_judged_on_what_the_shipped_checker_reads_at_the_edits_place():
    from dataclasses import replace as changed

    from bench.quality import (
        edit_succeeded,
        reserved_parts_at,
        shape_and_pattern_right,
        with_object,
    )
    from world.checker import Checker
    from world.scene import COLOURS

    edit = next(e for e in edit_set() if e.kind == "replace-concept" and e.concept == "object"
                and e.source.object_at(e.changed[0]).kind != "diamond")
    place = edit.changed[0]
    truth = edit.target.object_at(place)
    recoloured = changed(truth, colour="green", rgb=COLOURS["green"], pattern_rgb=COLOURS["red"])
    drawn = {  # what an edit may leave at the place: (shape and pattern right, whole concept)
        "the striped diamond": (truth, True, True),
        "a striped diamond in other colours": (recoloured, True, False),
        "its colours on a circle": (changed(truth, kind="circle"), False, False),
        "a plain diamond in its colour": (changed(truth, pattern=None, pattern_rgb=None),
                                          False, False),
    }
    checker = Checker.load()
    scenes = [edit.source] + [with_object(edit.target, place, obj) for obj, _, _ in drawn.values()]
    readings = checker.read([render(scene).image for scene in scenes])
    assert shape_and_pattern_right(edit, readings[0]) is False  # the photo before the edit
    assert reserved_parts_at(edit, readings[0])["kind"] is False
    for (name, (_, shape, whole)), reading in zip(drawn.items(), readings[1:], strict=True):
        assert shape_and_pattern_right(edit, reading) is shape, name
        assert edit_succeeded(edit, reading) is whole, name
    # only edits that put the object in are judged on it
    others = [e for e in edit_set() if e.concept != "object" or e.kind == "restyle"]
    assert {shape_and_pattern_right(e, readings[1]) for e in others} == {None}


# ---------------------------------------------------------------------------------------------
# People in group photos


def test_group_photos_have_two_faces_of_one_size_and_a_free_place():
    from bench.people import group_edits, group_photo
    from world.scene import is_reserved_person

    replaced_places = Counter()
    for index in range(24):
        scene = group_photo(index)
        assert scene == group_photo(index) and scene.style is None
        faces = scene.objects
        assert [o.kind for o in faces] == ["face", "face"] and faces[0].size == faces[1].size
        assert not any(is_reserved_person(face.features) for face in faces)
        add, swap = group_edits(index)
        (free,) = add.changed
        assert scene.object_at(free) is None
        assert add.command.action == "add" and add.command.position is None  # as a user asks
        person = add.target.object_at(free)
        assert is_reserved_person(person.features) and person.size == faces[0].size
        (place,) = swap.changed
        assert swap.command.subject == "face" and swap.command.position == place
        assert is_reserved_person(swap.target.object_at(place).features)
        assert swap.target.object_at(place).size == scene.object_at(place).size
        replaced_places[faces.index(scene.object_at(place))] += 1
        for edit in (add, swap):
            source, target = render(edit.source), render(edit.target)
            region = edited_region(source, target, edit.changed)
            assert region.any() and not region.all()
            assert psnr(source.image, target.image, ~region) == pytest.approx(IDENTICAL_PSNR)
    assert replaced_places == {0: 12, 1: 12}  # the first face, then the other, in turn


def test_the_people_part_runs_on_the_tiny_model_and_is_reported(tiny_model, tmp_path):
    from bench.concepts import ConceptCache
    from bench.people import run_people
    from bench.report import markdown

    plan = Plan.quick()
    cache = ConceptCache(tmp_path / "cache")
    people = run_people(tiny_model, untrained_checker(), plan, cache, lambda _: None)
    assert [row["seed"] for row in people["rows"]] == [0, 1]
    for row in people["rows"]:
        assert row["steps"] >= 1 and 0 <= row["shown"] <= 1 and not row["cached"]
        for name in ("add", "replace"):
            assert row[name]["n"] == plan.people_scenes, name
            assert 0 <= row[name]["recognised"] <= 1 and 0 <= row[name]["size_right"] <= 1
            assert is_finite_number(row[name]["background_psnr_db"])
            assert 0 < row[name]["mask_share"] <= 1  # the share the edit may change
    spread = people["spread"]["add"]["background_psnr_db"]
    values = [row["add"]["background_psnr_db"] for row in people["rows"]]
    assert spread["min"] == min(values) and spread["max"] == max(values)
    assert len(list((tmp_path / "cache").glob("person-*.safetensors"))) == 2
    again = run_people(tiny_model, None, plan, ConceptCache(tmp_path / "cache"),
                       lambda _: None)  # read back by a later run, no checker
    assert all(row["cached"] and row["shown"] is None for row in again["rows"])
    assert again["rows"][0]["add"]["recognised"] is None

    report = {"meta": {"date": "2026-01-01T00:00+00:00", "plan": asdict(plan),
                       "parts": ["people"], "wall_seconds": 1.0,
                       "machine": {"cpu": "x", "logical_cores": 2, "ram_gb": 1, "gpu": None,
                                   "torch_threads": 1},
                       "versions": {"python": "3", "torch": "2", "diffusers": "0",
                                    "transformers": "4"}},
              "people": people}
    text = markdown(report)
    assert "## People in group photos" in text
    assert "| seed | recognised (concept figure) | add: recognised | add: background PSNR |" in text
    assert "| lowest |" in text and "add: recognised >= 80% mean and >= 60% lowest" in text


def test_refused_portraits_teach_nobody_and_the_report_says_why(tiny_model, monkeypatch):
    """The worker's photo check refusing the portraits (as it does when its captioner reads
    them as different things) is a measured outcome: nobody is added, the row says why."""
    from bench import people
    from bench.report import people_section
    from engine.errors import MixedPhotosError

    def refuse(*_):
        raise MixedPhotosError((0, 1, 2, 3, 4), 5)

    monkeypatch.setattr(people, "reserved_concept", refuse)
    out = people.run_people(tiny_model, untrained_checker(), Plan.quick(), None, lambda _: None)
    for row in out["rows"]:
        assert row["refused"] == "photos 1, 2, 3, 4, 5 of 5 show something else than the others"
        assert row["add"]["recognised"] == row["replace"]["recognised"] == 0.0
    assert out["spread"]["add"]["recognised"]["max"] == 0.0
    assert out["spread"]["add"]["background_psnr_db"] is None
    text = "\n".join(people_section(out))
    refused_row = "| 0 | 0% | 0% | n/a | n/a | n/a | 0% | n/a | n/a | n/a | refused: photos 1, 2, 3"
    assert refused_row in text


def test_the_people_spread_leaves_out_what_a_seed_did_not_measure():
    from bench.people import spread

    def row(seed, recognised, psnr_db):
        cell = {"recognised": recognised, "background_psnr_db": psnr_db, "size_right": None}
        return {"seed": seed, "shown": None, "add": cell, "replace": dict(cell)}

    out = spread([row(0, 0.5, 31.0), row(1, None, 29.0), row(2, 1.0, 33.0)])
    assert out["add"]["recognised"] == {"mean": 0.75, "min": 0.5, "max": 1.0}
    assert out["replace"]["background_psnr_db"] == {"mean": pytest.approx(31.0), "min": 29.0,
                                                    "max": 33.0}
    assert out["shown"] is None and out["add"]["size_right"] is None


# ---------------------------------------------------------------------------------------------
# GPU mode


def test_sd15_configs_have_the_published_sizes():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    configs = sd15_configs()
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        models = {"unet": UNet2DConditionModel(**configs["unet"]),
                  "vae": AutoencoderKL(**configs["vae"]),
                  "text_encoder": CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))}
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    assert counts == SD15_PARAMETERS


def test_the_gpu_stages_run_on_a_tiny_sd15_on_the_cpu():
    model = build_sd15(scale=1 / 40, image_size=64, device="cpu", dtype=torch.float32)
    assert model.image_size == 64 and model.max_tokens == 77
    stages = run_gpu_stages(model, InversionSettings(steps=2, inner_steps=1), ti_steps=2,
                            repeats=1, log=lambda message: None)
    assert set(stages) == {"null_text_inversion", "direct_inversion", "fast_inversion", "edit",
                           "edit_direct", "textual_inversion_step"}
    assert all(is_finite_number(s["seconds"]) and s["seconds"] > 0 for s in stages.values())
    # Direct inversion is DDIM inversion: one conditional evaluation per step, no backward.
    assert (stages["direct_inversion"]["unet_forward"],
            stages["direct_inversion"]["unet_backward"]) == (2, 0)
    assert stages["null_text_inversion"]["unet_backward"] >= 1
    assert stages["edit"]["unet_forward"] == 2 * 4  # two steps of [uncond, cond] x 2 prompts


@pytest.mark.slow  # starts processes or runs a whole pipeline
def test_each_gpu_option_and_a_whole_learning_run_on_a_tiny_sd15_on_the_cpu():
    """The GPU plan's option table and learning end to end, at tiny size: each option runs
    the same photo-to-result edit and leaves the model as it found it."""
    model = build_sd15(scale=1 / 40, image_size=64, device="cpu", dtype=torch.float32)
    before = {name: type(p) for name, p in model.unet.attn_processors.items()}
    found = run_gpu_options(model, InversionSettings(steps=2), repeats=1,
                            options=("as shipped", "fused QKV", "20 steps"),
                            log=lambda message: None)
    assert set(found) == {"as shipped", "fused QKV", "20 steps"}
    assert set(found) <= set(OPTIONS)
    # direct inversion, then the edit: per step the source branch needs its conditional pass only
    assert found["as shipped"]["unet_forward"] == 2 + 2 * 3
    assert found["20 steps"]["unet_forward"] == 20 + 20 * 3
    assert all(is_finite_number(o["seconds"]) and o["seconds"] > 0 for o in found.values())
    assert {name: type(p) for name, p in model.unet.attn_processors.items()} == before
    learned = learn_end_to_end(model, steps=3)
    assert learned["steps"] == 3 and learned["seconds"] > 0 and "3 steps" in learned["label"]


def test_gpu_mode_is_skipped_with_a_message_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = run_gpu(Plan.quick(), log=lambda message: None)
    assert "no CUDA GPU" in result["skipped"]


def test_a_gpu_run_without_a_gpu_leaves_the_gpu_results_alone(monkeypatch, tmp_path):
    """`python -m bench --gpu --only gpu` on a machine without one, into a copy of the
    results: only a report under runs/ is added."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    results = tmp_path / "results"
    shutil.copytree(RESULTS_DIR, results, ignore=shutil.ignore_patterns("runs", "cache"))
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert run(bench_args("--gpu", "--only", "gpu", "--out", str(results)),
               Log(quiet=True)) == 0
    after = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    added = {p.relative_to(results).as_posix() for p in set(after) - set(before)}
    assert added == {"runs/full-gpu.json", "runs/full-gpu.md"}
    assert all(after[p] == content for p, content in before.items())
    assert "no CUDA GPU" in (results / "runs" / "full-gpu.md").read_text()


@pytest.mark.parametrize("options, name", [
    ((), "latest"),
    (("--gpu",), "latest"),
    (("--only", "queue"), "queue"),
    (("--only", "gpu"), "gpu"),
    (("--quick",), "runs/quick"),
    (("--quick", "--only", "queue"), "runs/quick-queue"),
    (("--only", "speed,quality"), "runs/full-speed-quality"),
    (("--scenes", "3"), "runs/full"),
])
def test_only_complete_runs_replace_the_tracked_results(options, name):
    from bench.runner import report_name

    args = bench_args(*options)
    plan = (Plan.quick() if args.quick else Plan.full()).with_overrides(args)
    parts = chosen_parts(args)
    assert report_name(plan, parts, {"gpu": {"device": "a GPU"}}) == name
    if "gpu" in parts:  # the same run where the GPU part was skipped
        skipped = report_name(plan, parts, {"gpu": {"skipped": "no CUDA GPU"}})
        assert skipped.startswith("runs/full")


# ---------------------------------------------------------------------------------------------
# The job queue


def test_queue_measure_drains_every_job_once_on_both_backends(pg_url):
    from bench.queue import markdown_section, measure, measure_wake

    sqlite = measure(None, 2, 10)
    postgres = measure(pg_url, 2, 10)
    for result in (sqlite, postgres):
        assert sum(result["claimed_per_worker"]) == 10 and len(result["claimed_per_worker"]) == 2
        assert is_finite_number(result["jobs_per_second"]) and result["jobs_per_second"] > 0
    for url in (None, pg_url):  # an idle worker takes each job as it arrives
        wake = measure_wake(url, 2)
        assert wake["jobs"] == 2 and 0 <= wake["median_s"] <= wake["max_s"]
    queue = {"jobs": 10, "workers": [2], "load_average": [1.0, 1.0, 1.0],
             "backends": {"sqlite": {"runs": {"2": sqlite},
                                     "wake": {"median_s": 0.25, "max_s": 0.5}},
                          "postgresql": {"missing": "PostgreSQL not found"}}}
    text = "\n".join(markdown_section(queue))
    assert f"| sqlite | {sqlite['jobs_per_second']:.0f} jobs/s | 250 ms (worst 500) |" in text
    assert "| postgresql | not measured | not measured |" in text
    assert "- postgresql: PostgreSQL not found." in text
