"""`oneword learn` and `oneword edit` as a user runs them, on the tiny model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from engine.concepts import load_concept

SAMPLES = Path(__file__).resolve().parent.parent / "engine" / "samples"


def oneword(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oneword", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow  # starts processes or runs a whole pipeline
def test_learn_then_edit_from_the_command_line(tiny_model_dir, tmp_path):
    concept_file = tmp_path / "mochi.safetensors"
    photos = sorted(str(p) for p in (SAMPLES / "creature").glob("*.png"))
    learned = oneword("learn", "--model", str(tiny_model_dir), "--name", "mochi", "--steps", "8",
                      "--describe", "with sky background", "--out", str(concept_file), *photos)
    assert learned.returncode == 0, learned.stderr
    assert "learned <mochi>" in learned.stdout
    assert "focused on word attention" in learned.stdout  # no captioner: the word's own maps
    assert load_concept(concept_file).name == "mochi"

    out, maps = tmp_path / "edited.png", tmp_path / "maps.png"
    edited = oneword("edit", str(SAMPLES / "scenes" / "scene-1.png"),
                     "replace circle with <mochi>", "--model", str(tiny_model_dir),
                     "--caption", "a big red circle on the left and a small blue star on the "
                     "right with grass background", "--concept", str(concept_file),
                     "--steps", "5", "--out", str(out), "--maps", str(maps))
    assert edited.returncode == 0, edited.stderr
    assert "inverting (ddim)" in edited.stderr  # the bot's mode for a replace with a word
    # a model folder without a caption grammar: the caption is edited word by word
    assert "-> 'a big red <mochi> <mochi>_1 <mochi>_2 <mochi>_3 on the left" in edited.stdout
    photo = Image.open(SAMPLES / "scenes" / "scene-1.png")
    assert Image.open(out).size == photo.size != (32, 32)  # the photo's size, not the model's
    assert Image.open(maps).width > 32


@pytest.mark.slow  # starts processes
def test_a_person_is_learned_from_the_head_and_shoulders_on_the_command_line(tiny_model_dir,
                                                                            tmp_path):
    pytest.importorskip("cv2")  # the face detector (the `faces` extra, also in dev)
    from tests.pictures import portrait

    photos = []
    for number, background in enumerate(((90, 140, 200), (200, 200, 120), (120, 190, 120))):
        photos.append(str(tmp_path / f"anna-{number}.png"))
        portrait(background=background).save(photos[-1])
    learned = oneword("learn", "--model", str(tiny_model_dir), "--name", "anna", "--kind",
                      "person", "--steps", "3", "--out", str(tmp_path / "anna.safetensors"),
                      *photos)
    assert learned.returncode == 0, learned.stderr
    assert "focused on head and shoulders" in learned.stdout


def test_command_line_errors_are_one_clear_line(tiny_model_dir, tmp_path):
    few = oneword("learn", "--model", str(tiny_model_dir), "--name", "mochi", "--out",
                  str(tmp_path / "x.safetensors"), str(SAMPLES / "creature" / "creature-1.png"))
    assert few.returncode == 2 and "oneword:" in few.stderr and "Traceback" not in few.stderr
    photos = [str(SAMPLES / "creature" / f"creature-{i}.png") for i in (1, 2, 3)]
    described = oneword("learn", "--model", str(tiny_model_dir), "--name", "mochi", "--out",
                        str(tmp_path / "x.safetensors"), "--describe", "a", "--describe", "b",
                        *photos)
    assert described.returncode == 2 and "once per photo (3 times)" in described.stderr
    unknown = oneword("edit", str(SAMPLES / "scenes" / "scene-1.png"), "paint it", "--model",
                      str(tiny_model_dir), "--caption", "a red circle", "--out",
                      str(tmp_path / "o.png"))
    assert unknown.returncode == 2 and "replace <word> with <name>" in unknown.stderr


# Inputs are refused before the model loads. Each command below points --model at an empty
# folder, which the engine cannot load: had the command loaded the model before refusing, its
# error would be the model's (test_an_unloadable_model_is_noticed_after_the_checks shows it).


def refused(result: subprocess.CompletedProcess, says: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and says in lines[0], result.stderr


def creature_photos() -> list[str]:
    return [str(SAMPLES / "creature" / f"creature-{i}.png") for i in (1, 2, 3)]


def learn(tmp_path: Path, *args: str, photos: list[str] | None = None,
          out: Path | None = None) -> subprocess.CompletedProcess:
    model = tmp_path / "empty-model"
    model.mkdir(exist_ok=True)
    return oneword("learn", "--model", str(model), "--name", "mochi", "--out",
                   str(out or tmp_path / "mochi.safetensors"), *args,
                   *(creature_photos() if photos is None else photos))


def edit(tmp_path: Path, command: str, *args: str, photo: Path | None = None,
         out: Path | None = None) -> subprocess.CompletedProcess:
    model = tmp_path / "empty-model"
    model.mkdir(exist_ok=True)
    return oneword("edit", str(photo or SAMPLES / "scenes" / "scene-1.png"), command,
                   "--model", str(model), "--caption", "a big red circle on the left",
                   "--out", str(out or tmp_path / "edited.png"), *args)


@pytest.mark.slow  # starts processes or runs a whole pipeline
def test_an_unloadable_model_is_noticed_after_the_checks(tmp_path):
    """The control for the tests below: good inputs reach the model, which fails to load."""
    learned = learn(tmp_path)
    assert learned.returncode == 2 and "cannot load a Stable Diffusion model" in learned.stderr
    edited = edit(tmp_path, "replace circle with cat")
    assert edited.returncode == 2 and "cannot load a Stable Diffusion model" in edited.stderr


def test_learn_refuses_a_missing_output_folder_before_loading(tmp_path):
    refused(learn(tmp_path, out=tmp_path / "missing" / "dir" / "x.safetensors"),
            "the folder " + str(tmp_path / "missing" / "dir") + " does not exist")
    refused(learn(tmp_path, out=tmp_path), "is a folder; give a file name")


def test_learn_refuses_unreadable_photos_and_bad_names_before_loading(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    refused(learn(tmp_path, photos=[*creature_photos()[:2], str(text)]),
            f"photo {text}: this file is not an image")
    missing = tmp_path / "gone.png"
    refused(learn(tmp_path, photos=[*creature_photos()[:2], str(missing)]),
            f"photo {missing}: cannot read gone.png")
    model = tmp_path / "empty-model"
    bad_name = oneword("learn", "--model", str(model), "--name", "Mo chi!", "--out",
                       str(tmp_path / "x.safetensors"), *creature_photos())
    refused(bad_name, "--name 'Mo chi!'")


def test_edit_refuses_bad_inputs_before_loading(tmp_path):
    refused(edit(tmp_path, "replace circle with cat", photo=tmp_path / "gone.png"),
            "cannot read gone.png")
    refused(edit(tmp_path, "replace circle with cat", out=tmp_path / "no" / "edited.png"),
            "the folder " + str(tmp_path / "no") + " does not exist")
    refused(edit(tmp_path, "replace circle with cat", "--maps", str(tmp_path / "no" / "m.png")),
            "--maps")
    refused(edit(tmp_path, "replace circle with <mochi>"),
            "<mochi> is not a learned word here (the --concept files hold: none)")
    refused(edit(tmp_path, "add mochi-2"), "<mochi-2> is not a learned word here")
    refused(edit(tmp_path, "replace circle with cat", "--concept", str(tmp_path / "m.safetensors")),
            "no such file")
    mode = edit(tmp_path, "replace circle with cat", "--mode", "slow")
    assert mode.returncode == 2 and "invalid choice: 'slow'" in mode.stderr


@pytest.mark.slow  # a whole model run, or waits out a peer client's polling
def test_an_edit_the_model_cannot_plan_stops_before_inverting(tiny_model_dir, tmp_path):
    """A plain word may be one the model knows: the model tells, and the inversion (whose
    progress bar would show on stderr) never starts."""
    result = oneword("edit", str(SAMPLES / "scenes" / "scene-1.png"), "add zorblax",
                     "--model", str(tiny_model_dir), "--caption", "a big red circle on the left",
                     "--out", str(tmp_path / "edited.png"))
    assert result.returncode == 2 and "neither a learned concept nor a word" in result.stderr
    assert "inverting" not in result.stderr and not (tmp_path / "edited.png").exists()


def test_the_cpu_default_is_set_before_torch_loads_and_never_over_the_users():
    from cli.main import use_cpu_defaults

    env: dict[str, str] = {}
    use_cpu_defaults(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    use_cpu_defaults(env)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}
    # the command line module loads no torch of its own, so main() sets it before any command
    probe = ("import sys; import cli.main; print('torch' in sys.modules)")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120)
    assert loaded.stdout.strip() == "False", loaded.stderr
