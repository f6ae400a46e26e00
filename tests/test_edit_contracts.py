"""Each edit kind keeps what its name promises, on the tiny random SD model.

add / replace / remove: confined by LocalBlend, and outside the blend mask the result is the
photo itself, pixel for pixel; add goes to a place the caption leaves free; remove drops the
source's self-attention. restyle: no mask, every part of the picture may change, and the
source's attention in the first steps keeps the layout.

Captions are the sticker world's, edited with its caption grammar (world/caption_grammar.py).
A random model's cross-attention is nearly uniform, so its word masks cover the whole picture;
the edits below therefore run with a half-picture mask in the words' place (`user_mask`), and
the words' own masks are tested on recorded attention.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from engine import operations
from engine.attention_control import AttentionStore
from engine.concept_tokens import concepts_in_use
from engine.concepts import Concept
from engine.config import EditSettings, InversionSettings
from engine.editing import edit
from engine.inversion import invert
from engine.operations import plan_edit
from engine.prompt_to_prompt import LocalBlend
from world.caption_grammar import WorldCaptionGrammar
from world.render import render
from world.scene import Scene, WorldObject

CAPTION = "a big red circle on the left with grass background"
GRAMMAR = WorldCaptionGrammar()  # the bundled model's caption grammar, as its folder names it


def request(action: str, subject: str | None = None, concept: str | None = None,
            position: str | None = None):
    """The engine's typed edit request."""
    return operations.EditRequest(action, subject=subject, concept=concept, position=position)


@pytest.fixture(scope="module")
def concepts(tiny_model):
    generator = torch.Generator().manual_seed(4)
    found = {name: Concept(name, kind, torch.randn(2, tiny_model.text_width, generator=generator),
                           10, tiny_model.source)
             for name, kind in (("mochi", "object"), ("inkwash", "style"))}
    with concepts_in_use(tiny_model, found.values()):  # for this module's tests, then gone
        yield found


@pytest.fixture(scope="module")
def inversion(tiny_model):
    scene = Scene((WorldObject("circle", "red", "big", "left", (220, 40, 40)),), "grass", None, 3)
    return invert(tiny_model, render(scene, 32).image, CAPTION, "null-text",
                  InversionSettings(steps=10, inner_steps=2))


def run(model, inversion, concepts, *args, **kwargs):
    """Plan an edit, then run it confined to the picture's left half if it blends."""
    prompt_edit = plan_edit(model, inversion.prompt, request(*args, **kwargs), concepts,
                            grammar=GRAMMAR)
    confined = prompt_edit
    if prompt_edit.blends:
        side = model.unet.config.sample_size
        left = np.zeros((side, side), np.float32)
        left[:, : side // 2] = 1
        confined = replace(prompt_edit, user_mask=left)
    return prompt_edit, edit(model, inversion, confined)


def recorded(monkeypatch, name: str) -> list:
    """Every object the editing module builds with `name` during the test, in order."""
    from engine import editing

    made, original = [], getattr(editing, name)
    monkeypatch.setattr(editing, name, lambda *a, **k: made.append(original(*a, **k)) or made[-1])
    return made


def photo(inversion) -> np.ndarray:
    return np.asarray(inversion.image.convert("RGB"), np.int16)


def assert_kept_outside(result, inversion):
    """Pixels the edit's mask does not reach are the photo's, and it changed something."""
    assert result.pixel_mask is not None
    outside = result.pixel_mask == 0
    assert outside[:, -8:].all() and not outside[:, :8].any()  # the left half, grown a little
    edited = np.asarray(result.image, np.int16)
    assert np.array_equal(edited[outside], photo(inversion)[outside])
    assert np.abs(edited[~outside] - photo(inversion)[~outside]).mean() > 1


def test_replace_keeps_every_pixel_outside_its_mask(tiny_model, inversion, concepts):
    prompt_edit, result = run(tiny_model, inversion, concepts, "replace", subject="circle",
                              concept="mochi")
    assert prompt_edit.target == "a big <mochi> <mochi>_1 on the left with grass background"
    assert prompt_edit.blend_source_words == ("red", "circle") and prompt_edit.keep_outside
    # the learned word holds the circle's maps only early on; a known word keeps the default
    assert prompt_edit.cross_replace == EditSettings().concept_cross_replace < 0.8
    assert plan_edit(tiny_model, CAPTION, request("replace", subject="circle", concept="star"),
                     concepts, grammar=GRAMMAR).cross_replace is None
    assert_kept_outside(result, inversion)


def test_add_goes_to_a_free_place_and_keeps_the_rest(tiny_model, inversion, concepts,
                                                      monkeypatch):
    schedules = recorded(monkeypatch, "Schedule")
    prompt_edit, result = run(tiny_model, inversion, concepts, "add", concept="mochi")
    assert prompt_edit.target == ("a big red circle on the left and a <mochi> <mochi>_1 on the "
                                  "right with grass background")  # the left is taken
    assert prompt_edit.blend_target_words == ("<mochi>", "<mochi>_1")
    # the other words hold the source's maps only early on, or the free place stays empty
    assert schedules[-1].cross_replace == EditSettings().add_cross_replace < 0.8
    assert_kept_outside(result, inversion)
    centre = plan_edit(tiny_model, CAPTION, request("add", concept="mochi", position="center"),
                       concepts, grammar=GRAMMAR)
    assert "a <mochi> <mochi>_1 in the center with" in centre.target


def test_remove_takes_the_phrase_out_without_the_sources_self_attention(tiny_model, inversion,
                                                                         concepts, monkeypatch):
    real = operations.__dict__.get("Schedule")
    schedules = recorded(monkeypatch, "Schedule")
    prompt_edit, result = run(tiny_model, inversion, concepts, "remove", subject="circle")
    assert real is None  # the schedule is the editing module's alone
    assert prompt_edit.target == "a picture with grass background"
    assert prompt_edit.blend_source_words == ("circle",)
    assert schedules[-1].self_replace == EditSettings().remove_self_replace == 0.0
    assert schedules[-1].cross_replace == EditSettings().remove_cross_replace < 0.8
    # the mask reaches past the removed object's rim
    assert prompt_edit.blend_growth == EditSettings().remove_mask_growth >= 1
    assert_kept_outside(result, inversion)


def test_restyle_repaints_everywhere_and_keeps_the_layout(tiny_model, inversion, concepts,
                                                          monkeypatch):
    schedules = recorded(monkeypatch, "Schedule")
    prompt_edit, result = run(tiny_model, inversion, concepts, "restyle", concept="inkwash")
    # the source's self-attention at every layer, the finest included
    assert schedules[-1].self_max_resolution == tiny_model.unet.config.sample_size
    assert prompt_edit.target == CAPTION + " in <inkwash> <inkwash>_1 style"
    assert not prompt_edit.blends and result.mask is None and result.pixel_mask is None
    assert prompt_edit.self_replace == EditSettings().restyle_self_replace > 0
    assert prompt_edit.cross_replace == EditSettings().restyle_cross_replace > 0
    assert schedules[-1].self_replace == prompt_edit.self_replace
    assert schedules[-1].cross_replace == prompt_edit.cross_replace
    assert prompt_edit.self_everywhere
    edited = np.asarray(result.image, np.int16)
    reconstruction = np.asarray(result.reconstruction, np.int16)
    change = np.abs(edited - reconstruction).mean(-1)
    half = change.shape[1] // 2
    assert change[:, :half].mean() > 0.5 and change[:, half:].mean() > 0.5  # not confined
    # the source's attention in the first steps holds the layout: without it the picture
    # drifts further (null-text inversion: both start from the photo's own noise)
    loose = edit(tiny_model, inversion, replace(prompt_edit, self_replace=0.0, cross_replace=0.0))
    drift = np.abs(np.asarray(loose.image, np.int16) - reconstruction).mean()
    assert change.mean() < drift


def test_a_restyle_starts_without_the_photos_tint(tiny_model, inversion, concepts, monkeypatch):
    from engine import editing

    starts, original = [], editing.sample
    monkeypatch.setattr(editing, "sample",
                        lambda model, start, *a, **k: starts.append(start.clone())
                        or original(model, start, *a, **k))
    ddim = invert(tiny_model, inversion.image, CAPTION, "ddim", InversionSettings(steps=10))
    prompt_edit, _ = run(tiny_model, ddim, concepts, "restyle", concept="inkwash")
    assert prompt_edit.neutral_start == EditSettings().restyle_neutral_start is True
    source, restyled = starts[-1][0], starts[-1][1]
    noise = ddim.noise_latent[0]
    assert torch.equal(source, noise)  # the photo's own branch is untouched
    assert noise.mean(dim=(-2, -1)).abs().max() > 1e-3  # the inverted noise has a tint ...
    assert restyled.mean(dim=(-2, -1)).abs().max() < 1e-5  # ... the restyled branch none
    assert torch.allclose(restyled - source, -noise.mean(dim=(-2, -1), keepdim=True))
    added, _ = run(tiny_model, ddim, concepts, "add", concept="mochi")
    assert not added.neutral_start and torch.equal(starts[-1][1], noise)  # the other edits keep it
    # after null-text inversion the fitted unconditional branch would pull the tint back
    run(tiny_model, inversion, concepts, "restyle", concept="inkwash")
    assert torch.equal(starts[-1][1], inversion.noise_latent[0])


def test_a_free_form_caption_is_confined_too(tiny_model, concepts):
    caption = "a photo of a red circle sitting on grass"
    swap = plan_edit(tiny_model, caption, request("replace", subject="circle", concept="mochi"),
                     concepts)
    assert swap.target == "a photo of a red <mochi> <mochi>_1 sitting on grass"
    assert swap.blend_source_words == ("circle",) and swap.keep_outside
    gone = plan_edit(tiny_model, caption, request("remove", subject="circle"), concepts)
    assert gone.reweight == {"circle": -1.0} and gone.keep_outside and gone.self_replace == 0.0


def test_the_blend_mask_is_where_the_edited_words_look():
    store = AttentionStore(4, items=slice(None))
    probs = torch.full((2, 1, 16, 6), 0.01)  # (source and target, heads, 4x4 queries, tokens)
    grid = probs.view(2, 1, 4, 4, 6)
    grid[0, :, :, 0, 2] = 1.0  # the source's token 2 looks at the first column
    grid[1, :, 3, :, 4] = 1.0  # the target's token 4 at the last row
    store.add(probs)
    mask = LocalBlend(store, [2], [4], 0.3, 0).word_mask(4)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[:, :2] = True  # the column, grown by the 3x3 pooling
    expected[2:, :] = True  # the row, grown likewise
    assert torch.equal(mask, expected)


def test_a_grown_blend_mask_reaches_one_pixel_further_each_way_and_a_users_mask_never():
    store = AttentionStore(8, items=slice(None))
    probs = torch.full((2, 1, 64, 6), 0.001)  # 8x8 queries
    probs.view(2, 1, 8, 8, 6)[0, :, 3, 3, 2] = 1.0  # the removed word looks at one pixel
    store.add(probs)
    plain = LocalBlend(store, [2], [], 0.3, 0).word_mask(8)
    assert torch.equal(plain.nonzero().amin(0), torch.tensor([2, 2]))  # the 3x3 pooling
    assert torch.equal(plain.nonzero().amax(0), torch.tensor([4, 4]))
    grown = LocalBlend(store, [2], [], 0.3, 0, growth=1).word_mask(8)
    assert torch.equal(grown.nonzero().amin(0), torch.tensor([1, 1]))
    assert torch.equal(grown.nonzero().amax(0), torch.tensor([5, 5]))
    assert int(grown.sum()) == 25
    user = torch.zeros(8, 8)
    user[:, :4] = 1.0
    users = LocalBlend(store, [2], [], 0.3, 0, user_mask=user, growth=1).word_mask(8)
    assert torch.equal(users, user > 0.5)


def test_a_replace_mask_leaves_out_what_does_not_join_the_replaced_object():
    store = AttentionStore(8, items=slice(None))
    probs = torch.full((2, 1, 64, 6), 0.001)  # 8x8 queries
    grid = probs.view(2, 1, 8, 8, 6)
    grid[0, :, 1:3, 1:3, 2] = 1.0  # the replaced word: a block near the top left
    grid[1, :, 1:3, 1:4, 4] = 1.0  # the new word: over the replaced object, a little wider ...
    grid[1, :, 6:8, 6:8, 4] = 0.5  # ... and over another object, far from it
    store.add(probs)
    replaced = LocalBlend(store, [2], [4], 0.3, 0).word_mask(8)
    assert replaced[:5, :5].any() and not replaced[5:, 5:].any()
    assert replaced[1, 4] and not replaced[1, 5]  # the new word's reach beyond the old block
    added = LocalBlend(store, [], [4], 0.3, 0).word_mask(8)  # an add: nothing to join
    assert added[5:, 5:].any() and added[:5, :5].any()


def test_a_learned_words_mask_reaches_further(tiny_model, inversion, concepts, monkeypatch):
    blends = recorded(monkeypatch, "LocalBlend")
    defaults = EditSettings()
    assert (defaults.concept_replace_blend_threshold < defaults.concept_blend_threshold
            < defaults.blend_threshold)
    for action, subject, threshold in (
            ("add", None, defaults.concept_blend_threshold),
            ("replace", "circle", defaults.concept_replace_blend_threshold)):
        learned, _ = run(tiny_model, inversion, concepts, action, subject=subject,
                         concept="mochi")
        assert learned.blend_threshold == threshold
        assert blends[-1].threshold == threshold  # the edit used it
        known, _ = run(tiny_model, inversion, concepts, action, subject=subject, concept="star")
        assert known.blend_threshold is None
        assert blends[-1].threshold == defaults.blend_threshold
