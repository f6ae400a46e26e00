"""The model card's measuring scenes ask for what their figures say they ask for."""

from __future__ import annotations

from collections import Counter

from world.checker import ObjectReading, Reading
from world.evaluate import feature_value_cases, is_whole, patterned_parts, patterned_scenes
from world.scene import (
    CHARACTER_WORDS,
    COLOURS,
    PATTERN_WORDS,
    PATTERNS,
    WorldObject,
    colour_word,
    grounded_caption,
    is_reserved_object_look,
)


def test_feature_value_cases_name_each_value_alone_or_beside_two_others():
    tables = CHARACTER_WORDS
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
