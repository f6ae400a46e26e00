"""`oneword learn` and `oneword edit` as a user runs them, on the tiny model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

from engine.concepts import load_concept

SAMPLES = Path(__file__).resolve().parent.parent / "engine" / "samples"


def oneword(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oneword", *args], capture_output=True,
                          text=True, timeout=300)


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
    assert "-> 'a big <mochi> <mochi>_1 <mochi>_2 <mochi>_3 on the left" in edited.stdout
    assert Image.open(out).size == (32, 32) and Image.open(maps).width > 32


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
