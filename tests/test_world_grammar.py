"""The sticker world's caption grammar: fine features named some of the time, never a reserved
concept as a whole, and a tokenizer that grows without moving the coarse words' ids."""

from __future__ import annotations

import random
from dataclasses import replace

from transformers import CLIPTokenizer

from world.architecture import MAX_TOKENS, build_tokenizer
from world.scene import (
    CHARACTER_FEATURES,
    EAR_WORDS,
    EYE_WORDS,
    FINE_RATE,
    MARK_WORDS,
    MAX_FINE_FEATURES,
    MOUTH_WORDS,
    PATTERN_WORDS,
    PERSON_FEATURES,
    RESERVED_CREATURE,
    RESERVED_PERSON,
    Scene,
    base_vocabulary,
    fine_hue_name,
    fine_vocabulary,
    full_description,
    grounded_caption,
    is_reserved_person,
    near_miss_person,
    person_vocabulary,
    random_group,
    random_scene,
    reserved_creature,
    reserved_object,
    reserved_person,
)
from world.vocab import write_vocabulary

FEATURE_WORDS = {word: feature for feature, table in (
    ("eyes", EYE_WORDS), ("ears", EAR_WORDS), ("mouth", MOUTH_WORDS), ("marks", MARK_WORDS))
    for word in table.values()}


def _captions(count: int, seed: int = 0) -> list[tuple[Scene, str, dict]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        scene = random_scene(rng)
        out.append((scene, *grounded_caption(scene, rng)))
    return out


def test_training_captions_name_fine_features_some_of_the_time():
    characters = named = patterns = patterned = sepia = sepia_named = 0
    for scene, text, grounding in _captions(3000):
        words = text.split()
        for obj in scene.objects:
            named_words = [words[i] for i in grounding[obj.position]]
            if obj.features is not None:
                characters += 1
                named += any(w in FEATURE_WORDS or w == fine_hue_name(obj.features.hue)
                             for w in named_words)
            elif obj.pattern:
                patterned += 1
                patterns += PATTERN_WORDS[obj.pattern] in named_words
        if scene.style == "sepia":
            sepia += 1
            sepia_named += "sepia" in words
        assert "duotone" not in words  # the reserved style is never named
    for share in (named / characters, patterns / patterned, sepia_named / sepia):
        assert FINE_RATE - 0.15 < share < FINE_RATE + 0.1  # a long caption falls back to plain


def test_named_features_are_the_objects_own_and_never_the_whole_reserved_creature():
    for scene, text, grounding in _captions(3000, seed=1):
        words = text.split()
        for obj in scene.objects:
            if obj.features is None:
                continue
            named_words = [words[i] for i in grounding[obj.position]]
            kinds = [FEATURE_WORDS[w] for w in named_words if w in FEATURE_WORDS]
            hue = fine_hue_name(obj.features.hue) in named_words
            assert len(kinds) + hue <= MAX_FINE_FEATURES < len(CHARACTER_FEATURES)
            for word in named_words:
                if word in FEATURE_WORDS:
                    feature = FEATURE_WORDS[word]
                    table = {"eyes": EYE_WORDS, "ears": EAR_WORDS, "mouth": MOUTH_WORDS,
                             "marks": MARK_WORDS}[feature]
                    assert table[getattr(obj.features, feature)] == word


def test_the_reserved_object_is_never_named_with_its_pattern_colour():
    rng = random.Random(4)
    scene = Scene((reserved_object(position="left"),), "sky")
    for _ in range(300):
        text, _ = grounded_caption(scene, rng)
        assert "blue stripes" not in text
    assert "stripes" in grounded_caption(scene, fine={"left": ("pattern",)})[0]


def test_a_caption_can_name_each_feature_of_the_reserved_creature_but_not_all():
    creature = reserved_creature(position="center")
    text, _ = grounded_caption(Scene((creature,), "sky"), fine={"center": ("hue", "eyes", "ears")})
    assert text == "a big teal wideeyed pointyeared creature in the center with sky background"
    assert RESERVED_CREATURE.hue == creature.features.hue
    other = replace(creature, features=replace(creature.features, marks="none"))
    assert "spotted" not in grounded_caption(Scene((other,), "sky"),
                                             fine={"center": ("marks",)})[0]


def test_every_word_is_one_token_and_every_caption_fits_the_model(tmp_path):
    tokenizer = build_tokenizer(tmp_path / "tok")
    for word in base_vocabulary() + fine_vocabulary():
        assert len(tokenizer(word).input_ids) == 3, word
    for _, text, _ in _captions(500, seed=2):
        assert len(tokenizer(text).input_ids) <= MAX_TOKENS, text


def test_fine_words_are_appended_without_moving_the_coarse_ids(tmp_path):
    write_vocabulary(base_vocabulary(), tmp_path / "old")
    old = CLIPTokenizer.from_pretrained(tmp_path / "old")
    new = build_tokenizer(tmp_path / "new")
    old_vocab = old.get_vocab()
    assert all(new.get_vocab()[token] == index for token, index in old_vocab.items())
    assert min(new.convert_tokens_to_ids(w + "</w>") for w in fine_vocabulary()) >= len(old)


def test_a_full_description_names_everything_and_no_training_caption_says_it_all():
    creature, diamond = reserved_creature(position="left"), reserved_object(position="right")
    assert full_description(creature) == "teal wideeyed pointyeared gaping spotted creature"
    assert full_description(diamond) == "orange diamond with blue stripes"
    face = replace(creature, kind="face")  # a face has no ears or marks (nor an identity)
    assert full_description(face) == "teal wideeyed gaping face"
    person = reserved_person()
    assert full_description(person) == "violet beady smiling ginger longhaired bespectacled face"
    rng = random.Random(7)
    for _ in range(300):
        text, _ = grounded_caption(Scene((creature, diamond), "sky"), rng)
        assert full_description(creature) not in text and full_description(diamond) not in text


def test_person_words_are_a_third_tier_that_moves_no_earlier_id(tmp_path):
    write_vocabulary(base_vocabulary(), tmp_path / "old", fine_vocabulary())
    old = CLIPTokenizer.from_pretrained(tmp_path / "old")
    new = build_tokenizer(tmp_path / "new")
    assert all(new.get_vocab()[token] == index for token, index in old.get_vocab().items())
    ids = [new.convert_tokens_to_ids(w + "</w>") for w in person_vocabulary()]
    assert min(ids) >= len(old) and new.unk_token_id not in ids


def test_a_near_miss_person_differs_in_one_identity_part():
    assert is_reserved_person(RESERVED_PERSON)
    rng = random.Random(3)
    for _ in range(60):
        near = near_miss_person(rng).features
        assert not is_reserved_person(near)
        changed = [part for part in PERSON_FEATURES
                   if getattr(near, part) != getattr(RESERVED_PERSON, part)]
        assert len(changed) == 1, changed


def test_no_caption_of_a_group_names_the_reserved_person_whole():
    rng = random.Random(11)
    whole = full_description(reserved_person())
    for _ in range(300):
        scene = random_group(rng)
        people = [o for o in scene.objects if o.kind == "face"]
        assert 2 <= len(people) <= 3
        scene = replace(scene, objects=(reserved_person(position=people[0].position),)
                        + tuple(o for o in scene.objects if o.position != people[0].position))
        text, grounding = grounded_caption(scene, rng)
        assert whole not in text
        named = [w for w in text.split() if w in set(person_vocabulary())]
        assert len(named) <= MAX_FINE_FEATURES * len(scene.objects)
