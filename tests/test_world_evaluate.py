"""The model card's measuring scenes ask for what their figures say they ask for."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from world.checker import ObjectReading, Reading
from world.evaluate import (
    feature_value_cases,
    fine_feature_scenes,
    identity_feature_cases,
    identity_prompt,
    is_whole,
    named_feature_right,
    patterned_parts,
    patterned_scenes,
    write_card_figures,
)
from world.scene import (
    CHARACTER_WORDS,
    COLOURS,
    FACE_ONLY,
    PATTERN_WORDS,
    PATTERNS,
    WorldObject,
    colour_word,
    grounded_caption,
    is_reserved_object_look,
    reserved_person,
)


def test_feature_value_cases_name_each_value_alone_or_beside_two_others():
    tables = {f: t for f, t in CHARACTER_WORDS.items() if f not in FACE_ONLY}  # creatures'
    for company in (0, 2):
        cases = feature_value_cases(3, company)
        assert Counter((feature, value) for feature, value, _, _ in cases) == {
            (feature, value): 3 for feature, table in tables.items() for value in table}
        for feature, value, scene, named in cases:
            (creature,) = scene.objects
            assert creature.kind == "creature" and scene.style is None
            assert getattr(creature.features, feature) == value
            assert feature in named and len(named) == 1 + company
            text = grounded_caption(scene, fine={creature.position: named})[0]
            assert tables[feature][value] in text.split()
            other_words = [w for f, t in tables.items() if f != feature and f not in named
                           for w in t.values()]
            assert not set(other_words) & set(text.split())


def test_patterned_scenes_name_both_colours_and_the_pattern():
    scenes = patterned_scenes(40)
    assert len(scenes) == 40 and {s.objects[0].pattern for s in scenes} == set(PATTERNS)
    for scene in scenes:
        (obj,) = scene.objects
        assert obj.features is None and scene.style is None
        assert not is_reserved_object_look(obj)
        text = grounded_caption(scene, fine={obj.position: ("pattern",)})[0]
        named = f"{obj.colour} {obj.kind} with {colour_word(obj.pattern_rgb)} "
        assert named + PATTERN_WORDS[obj.pattern] in text


def _read(colour: str, pattern_colour: str, position: str = "left", kind: str = "diamond"):
    return Reading("sky", None, (ObjectReading(kind, colour, "big", position, "stripes",
                                               pattern_colour),))


def test_patterned_parts_tell_whole_from_swapped_and_wrong():
    obj = WorldObject("diamond", "orange", "big", "left", COLOURS["orange"], pattern="stripes",
                      pattern_rgb=COLOURS["blue"])
    right = patterned_parts(_read("orange", "blue"), obj)
    assert is_whole(right) and not right["swapped"]
    swapped = patterned_parts(_read("blue", "orange"), obj)
    assert not is_whole(swapped) and swapped["swapped"] and swapped["kind"]
    assert not swapped["colour"] and not swapped["pattern_colour"]
    both_blue = patterned_parts(_read("blue", "blue"), obj)
    assert (both_blue["colour"], both_blue["pattern_colour"], both_blue["swapped"]) == (
        False, True, False)
    assert not is_whole(patterned_parts(_read("orange", "blue", kind="square"), obj))
    elsewhere = patterned_parts(_read("orange", "blue", position="right"), obj)
    assert not any(elsewhere.values())


def test_a_partial_run_never_rewrites_the_model_card(tmp_path):
    """`--card` with some figures only is refused before any model loads (the model given
    is an empty folder, which would fail to load), and the card stays as it is."""
    import subprocess
    import sys
    from pathlib import Path

    card = Path(__file__).resolve().parents[1] / "engine" / "models" / "sticker-world" / "README.md"
    before = card.read_bytes() if card.exists() else None
    result = subprocess.run([sys.executable, "-m", "world.evaluate", "--model", str(tmp_path),
                             "--only", "vae", "--count", "1", "--card"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "--card rewrites the model card's figures" in result.stderr
    assert (card.read_bytes() if card.exists() else None) == before


def test_identity_feature_cases_name_one_identity_value_of_a_face_alone():
    cases = identity_feature_cases(3)
    assert Counter((feature, value) for feature, value, _ in cases) == {
        (feature, value): 3 for feature in FACE_ONLY for value in CHARACTER_WORDS[feature]}
    every_word = {w for table in CHARACTER_WORDS.values() for w in table.values()}
    for feature, value, scene in cases:
        (face,) = scene.objects
        assert face.kind == "face" and scene.style is None
        assert getattr(face.features, feature) == value
        if feature == "hair_colour":  # a colour only where there is hair (or a beard) to see
            assert face.features.hair != "bald" or face.features.beard != "none"
        words = set(identity_prompt(scene, feature).split())
        assert words & every_word == {CHARACTER_WORDS[feature][value]}


def test_the_fine_features_figure_keeps_its_held_out_set_without_identity_features():
    cases = fine_feature_scenes(200)
    named = {feature for _, chosen in cases for feature in chosen}
    assert not named & set(FACE_ONLY)
    assert {"hue", "eyes", "mouth", "ears", "marks", "pattern"} <= named
    assert any(scene.objects[0].kind == "face" for scene, _ in cases)


def _face_read(features, position="left", kind="face"):
    return Reading("sky", None, (ObjectReading(kind, "purple", "big", position,
                                               features=features),))


def test_an_identity_feature_is_right_only_on_a_face_at_its_place_with_that_value():
    person = reserved_person("big", "left")
    assert named_feature_right(_face_read(person.features), person, "hair_colour")
    blond = replace(person.features, hair_colour="blond")
    assert not named_feature_right(_face_read(blond), person, "hair_colour")
    assert named_feature_right(_face_read(blond), person, "glasses")
    assert not named_feature_right(_face_read(person.features, "right"), person, "glasses")
    assert not named_feature_right(_face_read(person.features, kind="creature"), person, "hair")


def test_the_card_shows_the_person_against_her_own_target_and_the_identity_features(tmp_path):
    card = tmp_path / "README.md"
    card.write_text("# Card\n\n<!-- figures:start -->\nold\n<!-- figures:end -->\ntail\n")
    figures = {
        "concepts": {"concepts": {
            "creature": {"shown": 0.9, "target": 0.8, "seconds": 17.0},
            "person": {"shown": 0.75, "target": 0.85, "seconds": 30.0,
                       "parts": {"kind": 1.0, "hair_colour": 0.8}}}, "wall_seconds": 60},
        "identity_features": {"per_feature": {"hair": 0.9, "glasses": 0.7}, "lowest": 0.7,
                              "per_value": {"hair": {"short": 1.0, "bald": 0.8},
                                            "glasses": {"round": 0.7}},
                              "n_per_value": 40, "wall_seconds": 12.5},
        "fine_through_vae": {"right": 0.8, "per_feature": {"hue": 0.9}, "on_renders": 0.95,
                             "identity": {"per_feature": {"hair": 0.95, "glasses": 0.85},
                                          "on_renders": {"hair": 1.0, "glasses": 0.9}},
                             "wall_seconds": 3.0},
    }
    write_card_figures(card, figures, "python -m world.evaluate --count 2")
    text = card.read_text()
    assert text.startswith("# Card") and text.endswith("tail\n") and "old" not in text
    assert "| concepts: person shown | 0.750 | >= 0.85 | 30 (learning) |" in text
    assert "| concepts: creature shown | 0.900 | >= 0.80 | 17 (learning) |" in text
    assert "| identity_features: lowest | 0.700 | >= 0.80 | 12.5 |" in text
    assert ("named alone drawn right (40 generations a value): hair 0.90 (short 1.00, bald "
            "0.80); glasses 0.70 (round 0.70); read right on the true pictures after a VAE "
            "round trip (the ceiling): hair 0.95, glasses 0.85") in text
    assert "person (kind 1.00, hair_colour 0.80)" in text


def _untrained_checker():
    """A checker with random weights: its readings are arbitrary but exercise every path."""
    import torch

    from world.checker import SCENE_FIELDS, SLOT_FIELDS, Checker, CheckerNet, NetConfig

    torch.manual_seed(0)
    net = CheckerNet(NetConfig(), {k: len(v) for k, v in SCENE_FIELDS.items()},
                     {k: len(v) for k, v in SLOT_FIELDS.items()})
    return Checker(net, SCENE_FIELDS, SLOT_FIELDS)


def test_the_identity_figure_and_its_ceiling_run_on_the_tiny_model(tiny_model):
    from world.evaluate import fine_through_vae, identity_features

    checker = _untrained_checker()
    drawn = identity_features(tiny_model, checker, samples=1)
    assert list(drawn["per_value"]) == list(FACE_ONLY) and drawn["n"] == 11
    for feature in FACE_ONLY:
        assert set(drawn["per_value"][feature]) == set(CHARACTER_WORDS[feature])
        assert 0 <= drawn["per_feature"][feature] <= 1
    assert drawn["lowest"] == min(drawn["per_feature"].values())
    ceiling = fine_through_vae(tiny_model, checker, 2, identity_samples=1)
    assert list(ceiling["identity"]["per_feature"]) == list(FACE_ONLY)
    assert ceiling["identity"]["n"] == 11 and 0 <= ceiling["right"] <= 1
    assert all(0 <= v <= 1 for v in ceiling["identity"]["on_renders"].values())
