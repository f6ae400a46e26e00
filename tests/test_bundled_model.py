"""The bundled sticker-world model ships in the package and loads offline like any SD folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.model import BUNDLED_MODEL, load_model
from engine.sampling import generate
from world.captioner import captioner_for
from world.scene import person_vocabulary, vocabulary


@pytest.fixture(scope="module")
def bundled():
    return load_model(device="cpu")  # the default: no argument needed


def test_it_is_a_complete_diffusers_folder_within_the_size_budget():
    index = json.loads((BUNDLED_MODEL / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (BUNDLED_MODEL / part).is_dir(), part
    weights = sum(f.stat().st_size for f in BUNDLED_MODEL.rglob("*") if f.is_file())
    assert weights <= 40 * 2**20
    assert not list(BUNDLED_MODEL.rglob("*.bin")) and list(BUNDLED_MODEL.rglob("*.safetensors"))


def test_it_loads_through_the_ordinary_loader(bundled):
    assert bundled.source == str(BUNDLED_MODEL)
    assert (bundled.image_size, bundled.text_width, bundled.max_tokens) == (64, 128, 40)
    split = [word for word in vocabulary() if len(bundled.tokens(word)) != 3]
    # Every grammar word is one token, but for a last tier the folder may predate: a face's
    # identity words, which a warm start appends (world/vocab.py keeps earlier ids).
    assert not split or split == person_vocabulary(), split


def test_it_generates_and_its_captioner_reads_the_result(bundled):
    images = bundled.decode(generate(bundled, ["a big red circle on the left with grass "
                                               "background"], steps=10))
    pixels = np.asarray(images[0], np.float32)
    assert images[0].size == (64, 64) and pixels.std() > 5  # a picture, not a flat field
    captioner = captioner_for(bundled)
    assert captioner is not None
    assert captioner(images[0]).endswith("background")


def test_its_captioner_words_the_reserved_creature_in_full_for_learning(bundled):
    from PIL import Image

    from world.samples import SAMPLES_DIR

    captioner = captioner_for(bundled)
    photos = sorted((SAMPLES_DIR / "creature").glob("*.png"))
    words = [captioner.subject(Image.open(p).convert("RGB"), "object").words for p in photos]
    assert words.count("teal wideeyed pointyeared gaping spotted creature") >= len(photos) - 1


def test_its_captioner_starts_the_duotone_style_at_a_look_it_can_name(bundled):
    from PIL import Image

    from world.samples import SAMPLES_DIR

    captioner = captioner_for(bundled)
    photos = sorted((SAMPLES_DIR / "style").glob("*.png"))
    words = [captioner.subject(Image.open(p).convert("RGB"), "style").words for p in photos]
    assert words.count("sepia") >= len(photos) - 1  # the other tint; never duotone, unnamed


def test_a_word_is_also_asked_for_at_other_places(bundled):
    from engine.concepts import Concept
    from world.evaluate import OTHER_PLACES, concept_elsewhere

    table = bundled.text_encoder.get_input_embeddings().weight.detach()
    ids = bundled.tokenizer("red circle", add_special_tokens=False).input_ids
    circle = Concept("plain-circle", "object", table[ids].float().clone())
    checker = captioner_for(bundled).checker
    shown = concept_elsewhere(bundled, checker, circle, "creature", samples=2)
    assert list(shown) == [f"{place}/{background}" for place, background in OTHER_PLACES]
    assert set(shown.values()) == {0.0}  # a red circle is never the reserved creature


def test_a_removed_object_leaves_nothing_its_checker_reads(bundled):
    """The benchmark's removals that left specks of the object's colour around a ghost of its
    outline (the word's mask missed the object's rim): each now reads as gone."""
    from bench.quality import edit_set, edit_succeeded
    from engine.config import InversionSettings
    from engine.operations import Editor
    from world.render import render
    from world.scene import caption

    removals = [e for e in edit_set(20) if e.kind == "remove" and e.scene_index in (1, 6, 12, 19)]
    editor = Editor(bundled, None, InversionSettings(steps=15), mode="ddim")
    images = [editor.run(editor.prepare(render(e.source, 64).image, caption(e.source)),
                         e.command).image for e in removals]
    readings = captioner_for(bundled).checker.read(images)
    assert [edit_succeeded(e, r) for e, r in zip(removals, readings, strict=True)] == [True] * 4


def test_plain_words_reads_true_patterned_shapes_whole_and_asks_in_the_captioner_words(bundled):
    from world.evaluate import is_whole, patterned_parts, patterned_scenes, plain_words
    from world.render import render

    checker = captioner_for(bundled).checker
    scenes = patterned_scenes(6)
    readings = checker.read([render(scene, bundled.image_size).image for scene in scenes])
    whole = [is_whole(patterned_parts(reading, scene.objects[0]))
             for reading, scene in zip(readings, scenes, strict=True)]
    assert sum(whole) >= 5  # the judge reads the truth whole: the figure's misses are drawing's

    figure = plain_words(bundled, checker, count=2, samples=2)
    assert {r["words"] for r in figure["reserved"].values()} == {
        "teal wideeyed pointyeared gaping spotted creature", "orange diamond with blue stripes"}
    shares = [figure["patterned_whole"], *figure["patterned_parts"].values(),
              *(r["shown"] for r in figure["reserved"].values())]
    assert all(0.0 <= share <= 1.0 for share in shares)
    assert figure["n"] == 2 and figure["samples"] == 2
