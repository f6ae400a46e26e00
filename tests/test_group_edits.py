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
from PIL import Image, ImageDraw

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
    from engine.faces import CascadeFaceFinder, PersonFinder, people_parts

    finder = CascadeFaceFinder()
    photo = group_photo((384, 384))  # two people on the left half, the right half free
    editor = Editor(tiny_model, None, InversionSettings(steps=4), mode="direct", faces=finder)
    inversion = editor.prepare(photo, CAPTION)  # the random model's own maps
    side = inversion.maps.shape[0]
    people = people_parts(PersonFinder(faces=finder), photo, side)
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


# The absentee on a model whose captions follow a grammar (the bundled world's): two heads that
# touch, on the left and in the centre, the right third free. The segmenter below finds the two
# as one part; nobody's face is drawn well enough for a detector.
GROUND = (40, 160, 60)
HEADS = ((1 / 6, (200, 40, 40)), (5 / 12, (40, 40, 200)))  # centre (share of the width), colour
RADIUS = 1 / 8 + 1 / 96  # a quarter of the width across, and a pixel more: they touch
WORLD_CAPTION = ("a big red face on the left and a big blue face in the center "
                 "with grass background")


def touching_heads(side: int = 96) -> Image.Image:
    """Two round heads side by side, touching, in the left and centre thirds of a square."""
    image = Image.new("RGB", (side, side), GROUND)
    draw = ImageDraw.Draw(image)
    radius = RADIUS * side
    for centre, colour in HEADS:
        x, y = centre * side, side / 2
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    return image


class NotTheGround:
    """A segmenter for the drawn photos: everything that is not the ground's colour."""

    def mask(self, image: Image.Image) -> np.ndarray:
        pixels = np.asarray(image.convert("RGB"), np.int16)
        return (np.abs(pixels - GROUND).sum(-1) > 30).astype(np.float32)


def test_people_who_touch_are_told_apart_in_a_segmenters_mask():
    from engine.faces import segmented_people

    mask = NotTheGround().mask(touching_heads(96))
    mask[2, 90] = 1.0  # a speck is nobody
    left, centre = sorted(segmented_people(mask))
    for (x0, y0, x1, y1), (share, _) in zip((left, centre), HEADS, strict=True):
        assert abs((x0 + x1) / 2 - share * 96) <= 2 and abs((y0 + y1) / 2 - 48) <= 2
        assert abs((x1 - x0) - 25) <= 3 and abs((y1 - y0) - 25) <= 3  # each head's own size
    tall = np.zeros((96, 96), np.float32)
    tall[10:90, 40:60] = 1.0  # a whole body: one person, cut to head-and-shoulders height
    assert segmented_people(tall) == [(40, 10, 60, 30)]


def world_editor(tiny_model) -> Editor:
    """An editor on the tiny model with the drawn photos' segmenter and the world's caption
    grammar (the bundled model's folder names it)."""
    from world.caption_grammar import WorldCaptionGrammar

    editor = Editor(tiny_model, None, InversionSettings(steps=4), mode="direct",
                    segmenter=NotTheGround())
    editor.grammar = WorldCaptionGrammar()
    return editor


def in_photo_pixels(box, side: int, photo_side: int, grow: int = 0) -> tuple[slice, slice]:
    """A map box (top, left, bottom, right) as photo rows and columns, grown by `grow` map
    pixels."""
    top, left, bottom, right = box
    scale = photo_side / side
    return (slice(max(0, round((top - grow) * scale)), round((bottom + grow) * scale)),
            slice(max(0, round((left - grow) * scale)), round((right + grow) * scale)))


def test_anna_added_to_a_group_takes_her_own_place_and_nothing_else(tiny_model, anna):
    from engine.faces import PersonFinder, people_parts

    editor = world_editor(tiny_model)
    photo = touching_heads(96)
    inversion = editor.prepare(photo, WORLD_CAPTION)
    side = inversion.maps.shape[0]
    people = people_parts(PersonFinder(segmenter=NotTheGround()), photo, side)
    assert len(people) == 2
    outcome = editor.run(inversion, EditRequest("add", concept="anna"), [anna], photo=photo)
    assert " on the right with " in outcome.prompt_edit.target  # the grammar's free place
    region = outcome.prompt_edit.region
    assert region is not None
    rows, cols = np.nonzero(region)
    box = (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
    (tall, wide), _ = others_measure(people, side)
    assert (box[2] - box[0], box[3] - box[1]) == (round(tall * side), round(wide * side))
    assert cols.min() >= max(p[3] for p in people)  # beside the others, over nobody
    assert (cols.min() + cols.max() + 1) / 2 >= 2 * side / 3  # in the right third
    latent = outcome.result.mask
    assert latent.any() and not latent[region == 0].any()
    # at the photo's size: her box, the latent pixel the decoder reaches beyond it and the
    # soft seam's half pixel
    changed = outcome.mask > 0
    inside = np.zeros_like(changed)
    inside[in_photo_pixels(box, side, 96, grow=2)] = True
    assert changed.any() and not changed[~inside].any()
    # one person's share of the photo with that rim, not the half a learned word's blend takes
    assert changed.mean() <= (tall * side + 3) * (wide * side + 3) / side**2 < 0.3
    for person in people:  # the others untouched (she keeps a pixel's gap where there is room)
        assert not changed[in_photo_pixels(person, side, 96)].any()
    same = np.asarray(outcome.image)[~changed] == np.asarray(photo)[~changed]
    assert same.all()  # everything outside her mask, pixel for pixel


def test_replacing_the_face_on_the_left_changes_only_the_left_one(tiny_model, anna):
    from engine.faces import PersonFinder, people_parts

    editor = world_editor(tiny_model)
    photo = touching_heads(96)
    request = EditRequest("replace", subject="face", concept="anna", position="left")
    inversion = editor.prepare(photo, WORLD_CAPTION)
    side = inversion.maps.shape[0]
    left, centre = sorted(people_parts(PersonFinder(segmenter=NotTheGround()), photo, side),
                          key=lambda b: b[1])
    outcome = editor.run(inversion, request, [anna], photo=photo)
    assert "big blue face in the center" in outcome.prompt_edit.target  # its phrase kept
    assert "big red face" not in outcome.prompt_edit.target
    region = outcome.prompt_edit.region
    assert region[left[0]:left[2], left[1]:left[3]].all()
    theirs = np.zeros_like(region, bool)
    theirs[centre[0]:centre[2], centre[1]:centre[3]] = True
    theirs[left[0]:left[2], left[1]:left[3]] = False  # where the boxes overlap, hers
    assert not region[theirs].any()
    latent = outcome.result.mask
    assert latent.any() and not latent[region == 0].any()
    # at the photo's size: nothing right of her place's rim (her box grown by a pixel above
    # and below it, a latent pixel the decoder reaches and the soft seam), so the centre face
    # but its touching edge, and the free third, are the photo's own
    changed = outcome.mask > 0
    assert changed.any() and not changed[:, (left[3] + 3) * 96 // side:].any()
    same = np.asarray(outcome.image)[~changed] == np.asarray(photo)[~changed]
    assert same.all()
