"""Edits of group photos on the tiny random SD model: someone added is as big as the others and
in line with them, at the free place; "the man on the left" is the one on the left. The photo's
attention maps are set by the test (where each word's things are), since a random model's own
maps find nothing in particular.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.attention_places import (
    connected_parts,
    free_place,
    others_measure,
    subject_parts,
)
from engine.config import ConceptSettings, EditSettings, InversionSettings
from engine.errors import PromptError
from engine.operations import Editor, EditRequest, plan_edit, source_prompt
from engine.prompt_alignment import token_spans
from engine.textual_inversion import learn_concept
from oneword.grammar import Position
from tests.pictures import group_photo, test_photo

CAPTION = "a photo of two men"
SIDE = 16
LEFT_MAN = (5, 2, 9, 6)  # top, left, bottom, right in map pixels
RIGHT_MAN = (5, 10, 9, 14)


def group_maps(model, prompt: str, tokens: int, side: int = SIDE) -> torch.Tensor:
    """(side, side, tokens) maps of `prompt` over a photo of two men: "men" and "man" on the two
    men, every other word spread evenly over the photo."""
    maps = torch.full((side, side, tokens), 0.01)
    spans = token_spans(model.tokenizer, prompt)
    for word in ("men", "man"):
        for position in spans.positions(word):
            maps[..., position] = 0.001
            for top, left, bottom, right in (LEFT_MAN, RIGHT_MAN):
                maps[top:bottom, left:right, position] = 1.0
    return maps


def test_the_parts_of_a_words_map_are_the_things_it_finds(tiny_model):
    mask = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    mask[5:9, 2:6] = mask[5:9, 10:14] = mask[0, 15] = True
    assert sorted(connected_parts(mask)) == [(0, 15, 1, 16), LEFT_MAN, RIGHT_MAN]
    maps = group_maps(tiny_model, CAPTION, tiny_model.max_tokens)
    spans = token_spans(tiny_model.tokenizer, CAPTION)
    words = [spans.positions(w) for w in CAPTION.split()]
    # "photo" and "two" look everywhere: no thing; "men": two, 4 pixels high and wide
    assert sorted(subject_parts(maps, words, 0.4)) == [LEFT_MAN, RIGHT_MAN]
    assert others_measure([LEFT_MAN, RIGHT_MAN], SIDE) == ((4 / SIDE, 4 / SIDE), 7 / SIDE)
    assert others_measure([], SIDE) is None
    size, level = others_measure([(0, 0, 1, 1)], SIDE)
    assert size == (0.15, 0.15)  # a speck: no smaller than the size range allows


def test_a_free_place_at_the_others_level_is_one_row_of_squares():
    maps = torch.full((SIDE, SIDE, 4), 0.01)
    maps[5:9, 2:6, 1] = maps[5:9, 10:14, 1] = 1.0
    place = free_place(maps, [1], None, 4 / SIDE, 7 / SIDE)
    rows, cols = np.nonzero(place)
    assert (rows.min(), rows.max() + 1) == (5, 9) and cols.max() - cols.min() + 1 == 4
    assert not place[5:9, 2:6].any() and not place[5:9, 10:14].any()
    right = free_place(maps, [1], Position.RIGHT, 4 / SIDE, 7 / SIDE)
    assert np.nonzero(right)[1].min() >= 14 - 4 // 2 and np.nonzero(right)[0].min() == 5


def test_an_add_to_a_group_is_as_big_as_the_others_and_beside_them(tiny_model):
    maps = group_maps(tiny_model, CAPTION, tiny_model.max_tokens)
    planned = plan_edit(tiny_model, CAPTION, EditRequest("add", concept="hat"), {},
                        EditSettings(), maps=maps)
    rows, cols = np.nonzero(planned.region)
    assert (rows.min(), rows.max() + 1) == (5, 9)  # in line with the two men
    assert cols.max() - cols.min() + 1 == 4  # as wide as each of them
    assert not planned.region[5:9, 2:6].any() and not planned.region[5:9, 10:14].any()
    # nothing to measure: the fixed square, as before
    even = torch.full((SIDE, SIDE, tiny_model.max_tokens), 0.01)
    plain = plan_edit(tiny_model, CAPTION, EditRequest("add", concept="hat"), {},
                      EditSettings(), maps=even)
    assert plain.region.sum() == round(0.4 * SIDE) ** 2


def test_which_of_several_things_is_meant(tiny_model):
    prompt = source_prompt(CAPTION, EditRequest("replace", subject="man", concept="hat"))
    assert prompt == "a photo of two men with a man"
    maps = group_maps(tiny_model, prompt, tiny_model.max_tokens)
    for position, kept in ((Position.LEFT, RIGHT_MAN), (Position.RIGHT, LEFT_MAN)):
        request = EditRequest("replace", subject="man", concept="hat", position=position)
        region = plan_edit(tiny_model, prompt, request, {}, EditSettings(), maps=maps).region
        top, left, bottom, right = kept
        assert not region[top:bottom, left:right].any()  # the other man is left alone
        mine = LEFT_MAN if position is Position.LEFT else RIGHT_MAN
        assert region[mine[0]:mine[2], mine[1]:mine[3]].all()
    removed = plan_edit(tiny_model, prompt, EditRequest("remove", subject="man",
                                                        position="right"), {},
                        EditSettings(), maps=maps).region
    assert removed[5:9, 10:14].all() and not removed[5:9, 2:6].any()
    whole = plan_edit(tiny_model, prompt, EditRequest("replace", subject="man", concept="hat"),
                      {}, EditSettings(), maps=maps)
    assert whole.region is None  # no place named: the word's whole blend, both men
    with pytest.raises(PromptError, match="which man"):
        plan_edit(tiny_model, prompt, EditRequest("replace", subject="man", concept="hat",
                                                  position="left"), {}, EditSettings(),
                  maps=None)


@pytest.fixture(scope="module")
def anna(tiny_model):
    """A person word learned on the tiny model (a few steps: the test is about the edit)."""
    portraits = [test_photo(seed, 48, blobs=1) for seed in (11, 12, 13)]
    settings = ConceptSettings(steps=2, batch_size=2, vectors=2, augment=2, early_stop_window=0)
    return learn_concept(tiny_model, portraits, "anna", "person", settings).concept


def group_inversion(editor: Editor, photo, prompt: str):
    """The photo inverted under `prompt`, with the test's maps of two men in place of the
    random model's own."""
    inversion = editor.prepare(photo, prompt)
    return replace(inversion, maps=group_maps(editor.model, prompt, inversion.maps.shape[-1],
                                              inversion.maps.shape[0]))


def columns_changed(mask: np.ndarray, side: int) -> tuple[float, float]:
    """The first and last changed column of a mask, as shares of the width."""
    cols = np.nonzero(mask.any(0))[0]
    return cols.min() / mask.shape[1] * side, (cols.max() + 1) / mask.shape[1] * side


def test_adding_a_person_to_a_group_photo_keeps_everyone_else(tiny_model, anna):
    editor = Editor(tiny_model, None, InversionSettings(steps=4), mode="direct")
    photo = test_photo(21, (96, 96), blobs=2)
    inversion = group_inversion(editor, photo, CAPTION)
    assert inversion.maps.shape[0] == SIDE
    outcome = editor.run(inversion, EditRequest("add", concept="anna"), [anna], photo=photo)
    region = outcome.prompt_edit.region
    rows, cols = np.nonzero(region)
    assert (rows.min(), rows.max() + 1) == (5, 9) and cols.max() - cols.min() + 1 == 4
    latent = outcome.result.mask  # the blend: her words' attention, only inside the place
    assert latent.shape == region.shape and latent.any() and not latent[region == 0].any()
    # at the photo's size the seam is one latent pixel wider (the decoder's reach)
    assert outcome.mask is not None
    first, last = columns_changed(outcome.mask, SIDE)
    assert cols.min() - 2 <= first and last <= cols.max() + 3
    same = np.asarray(outcome.image)[outcome.mask == 0] == np.asarray(photo)[outcome.mask == 0]
    assert same.all()  # everyone else, pixel for pixel


def test_replacing_the_man_on_the_left_keeps_the_man_on_the_right(tiny_model, anna):
    editor = Editor(tiny_model, None, InversionSettings(steps=4), mode="direct")
    photo = test_photo(22, (96, 96), blobs=2)
    request = EditRequest("replace", subject="man", concept="anna", position="left")
    inversion = group_inversion(editor, photo, source_prompt(CAPTION, request))
    outcome = editor.run(inversion, request, [anna], photo=photo)
    latent = outcome.result.mask
    top, left, bottom, right = RIGHT_MAN
    assert latent.any() and not latent[:, LEFT_MAN[3] + 1:].any()  # the right man untouched
    assert outcome.mask is not None
    first, last = columns_changed(outcome.mask, SIDE)
    assert last <= LEFT_MAN[3] + 3 < left
    same = np.asarray(outcome.image)[outcome.mask == 0] == np.asarray(photo)[outcome.mask == 0]
    assert same.all()


def test_a_person_is_added_beside_the_faces_a_detector_finds_and_as_big(tiny_model, anna):
    pytest.importorskip("cv2")  # the `faces` extra (also in dev)
    from engine.faces import CascadeFaceFinder, people_parts

    finder = CascadeFaceFinder()
    photo = group_photo((384, 384))  # two people on the left half, the right half free
    editor = Editor(tiny_model, None, InversionSettings(steps=4), mode="direct", faces=finder)
    inversion = editor.prepare(photo, CAPTION)  # the random model's own maps
    side = inversion.maps.shape[0]
    people = people_parts(finder, photo, side)
    assert len(people) == 2 and max(p[3] for p in people) <= side // 2 + 1
    outcome = editor.run(inversion, EditRequest("add", concept="anna"), [anna], photo=photo)
    rows, cols = np.nonzero(outcome.prompt_edit.region)
    (tall, wide), level = others_measure(people, side)
    assert rows.max() + 1 - rows.min() == round(tall * side)  # as big as the others
    assert cols.max() + 1 - cols.min() == round(wide * side)
    assert abs((rows.min() + rows.max() + 1) / 2 - level * side) <= 1  # in line with them
    assert cols.min() >= max(p[3] for p in people)  # beside them, not over anybody
    same = np.asarray(outcome.image)[outcome.mask == 0] == np.asarray(photo)[outcome.mask == 0]
    assert same.all()
    # an object added to the same photo is measured by the words' attention, not the faces
    hat = editor.run(inversion, EditRequest("add", concept="hat"), [anna], photo=photo)
    words_only = plan_edit(tiny_model, inversion.prompt, EditRequest("add", concept="hat"), {},
                           EditSettings(), maps=inversion.maps)
    assert np.array_equal(hat.prompt_edit.region, words_only.region)
