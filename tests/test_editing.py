"""Prompt-to-prompt editing on a tiny random SD model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.attention_control import AttentionLayer, ControlledAttnProcessor, controlled_attention
from engine.config import EditSettings, InversionSettings
from engine.editing import PromptEdit, edit
from engine.errors import PromptError
from engine.inversion import invert, reconstruct
from engine.prompt_alignment import align, token_spans
from tests.pictures import test_photo

CAPTION = "a big red circle on the left with grass background"


@pytest.fixture(scope="module")
def inversion(tiny_model):
    photo = test_photo(2, 32)
    return invert(tiny_model, photo, CAPTION, "null-text", InversionSettings(steps=10,
                                                                              inner_steps=4))


@pytest.fixture(scope="module")
def reconstruction(tiny_model, inversion):
    return np.asarray(reconstruct(tiny_model, inversion), np.float32)


def test_identical_prompts_give_the_reconstruction(tiny_model, inversion, reconstruction):
    result = edit(tiny_model, inversion, PromptEdit(CAPTION, CAPTION))
    assert np.abs(np.asarray(result.image, np.float32) - reconstruction).max() <= 1
    assert np.abs(np.asarray(result.reconstruction, np.float32) - reconstruction).max() <= 1


def test_an_empty_edit_of_a_direct_inversion_is_the_photo(tiny_model):
    photo = test_photo(2, 32)
    round_trip = np.asarray(tiny_model.decode(tiny_model.encode_image(photo))[0], np.float32)
    direct = invert(tiny_model, photo, CAPTION, "direct", InversionSettings(steps=10))
    for anchor_edited in (False, True):
        result = edit(tiny_model, direct, PromptEdit(CAPTION, CAPTION),
                      EditSettings(anchor_edited=anchor_edited))
        assert np.abs(np.asarray(result.reconstruction, np.float32) - round_trip).max() <= 1
    # With the edited branch anchored too, an empty edit gives the photo back exactly ...
    assert np.abs(np.asarray(result.image, np.float32) - round_trip).max() <= 1
    # ... and a real edit still changes it.
    swapped = edit(tiny_model, direct, PromptEdit(CAPTION, CAPTION.replace("circle", "star")),
                   EditSettings(anchor_edited=True))
    assert np.abs(np.asarray(swapped.image, np.float32) - round_trip).mean() > 0.5


def test_an_edit_of_a_direct_inversion_skips_the_source_branch_guidance(tiny_model, inversion):
    """The source branch is put back on the trajectory after every step, so its unconditional
    evaluation would be thrown away: three UNet evaluations per step instead of four."""
    from bench.measure import UNetCounter

    photo = test_photo(2, 32)
    direct = invert(tiny_model, photo, CAPTION, "direct", InversionSettings(steps=4))
    swap = PromptEdit(CAPTION, CAPTION.replace("circle", "star"))
    with UNetCounter(tiny_model.unet) as counted:
        edit(tiny_model, direct, swap)
    assert (counted.calls, counted.forward) == (4, 4 * 3)
    with UNetCounter(tiny_model.unet) as counted:  # anchoring both branches needs all four
        edit(tiny_model, direct, swap, EditSettings(anchor_edited=True))
    assert counted.forward == 4 * 4
    with UNetCounter(tiny_model.unet) as counted:
        edit(tiny_model, inversion, swap)
    assert counted.forward == inversion.settings.steps * 4


def test_word_swap_changes_the_image(tiny_model, inversion, reconstruction):
    result = edit(tiny_model, inversion, PromptEdit(CAPTION, CAPTION.replace("circle", "star")))
    assert np.abs(np.asarray(result.image, np.float32) - reconstruction).mean() > 0.5
    assert result.target_tokens[4] == "star</w>"
    assert result.maps.shape[0] == 2 and result.maps.shape[-1] == tiny_model.max_tokens


def test_local_blend_keeps_pixels_outside_the_mask(tiny_model, inversion, reconstruction):
    side = tiny_model.unet.config.sample_size
    mask = np.zeros((side, side), np.float32)
    mask[:, : side // 2] = 1  # edit only the left half
    target = CAPTION.replace("red circle", "blue star")
    result = edit(tiny_model, inversion, PromptEdit(CAPTION, target, user_mask=mask))
    edited = np.asarray(result.image, np.float32)
    # The decoder's group norms and convolutions spread a change a little beyond the mask.
    right = slice(edited.shape[1] // 2 + 4, None)
    left = slice(0, edited.shape[1] // 2 - 4)
    outside = np.abs(edited[:, right] - reconstruction[:, right]).mean()
    inside = np.abs(edited[:, left] - reconstruction[:, left]).mean()
    unmasked = edit(tiny_model, inversion, PromptEdit(CAPTION, target)).image
    unmasked_outside = np.abs(np.asarray(unmasked, np.float32)[:, right]
                              - reconstruction[:, right]).mean()
    # Outside the mask the latents are the source's; the decoder's group norms still carry a
    # little of the edit there (how much depends on the random weights), so compare.
    assert outside < inside / 2 and outside < unmasked_outside / 2
    assert result.mask is not None and result.mask[:, : side // 2].all()


def test_words_local_blend_builds_a_mask(tiny_model, inversion):
    target = CAPTION.replace("circle", "star")
    result = edit(tiny_model, inversion, PromptEdit(CAPTION, target, ("circle",), ("star",)))
    assert result.mask is not None and result.mask.any()


def test_reweight_changes_and_unknown_word_is_refused(tiny_model, inversion, reconstruction):
    result = edit(tiny_model, inversion, PromptEdit(CAPTION, CAPTION, reweight={"circle": -2.0}))
    assert np.abs(np.asarray(result.image, np.float32) - reconstruction).mean() > 0.2
    with pytest.raises(PromptError, match="not in the edited prompt"):
        edit(tiny_model, inversion, PromptEdit(CAPTION, CAPTION, reweight={"dog": 2.0}))


def test_another_seed_gives_another_take(tiny_model, inversion):
    target = CAPTION.replace("circle", "star")
    first = edit(tiny_model, inversion, PromptEdit(CAPTION, target))
    again = edit(tiny_model, inversion, PromptEdit(CAPTION, target))
    other = edit(tiny_model, inversion, PromptEdit(CAPTION, target), EditSettings(seed=7))
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image))
    assert not np.array_equal(np.asarray(first.image), np.asarray(other.image))


def test_edit_needs_the_inverted_caption(tiny_model, inversion):
    with pytest.raises(PromptError, match="source prompt"):
        edit(tiny_model, inversion, PromptEdit("a dog", "a cat"))
    with pytest.raises(PromptError, match="too long"):
        edit(tiny_model, inversion, PromptEdit(CAPTION, CAPTION + " and a cat" * 10))


def test_alignment_of_a_swap_into_a_multi_token_word(tiny_model):
    source = token_spans(tiny_model.tokenizer, "a red circle on the left")
    target = token_spans(tiny_model.tokenizer, "a red xyz on the left")  # 'xyz': 3 tokens
    assert len(target.spans[2]) == 3
    alignment = align(source, target, tiny_model.max_tokens)
    circle = source.spans[2][0]
    for j in target.spans[2]:  # every piece of the new word looks where 'circle' looked
        assert alignment.mapper[circle, j] == 1.0 and alignment.from_source[j] == 1
    assert alignment.mapper[source.spans[3][0], target.spans[3][0]] == 1.0  # 'on' shifted
    inserted = align(source, token_spans(tiny_model.tokenizer, "a red big circle on the left"),
                     tiny_model.max_tokens)
    assert inserted.from_source[3] == 0  # an added word keeps its own attention


class CountingController:
    """Asks for one kind of layer only and counts what it is given."""

    def __init__(self, cross: bool):
        self.cross = cross
        self.seen: list[AttentionLayer] = []

    def wants(self, layer: AttentionLayer) -> bool:
        return layer.is_cross == self.cross

    def __call__(self, probs: torch.Tensor, layer: AttentionLayer) -> torch.Tensor:
        assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-4)
        self.seen.append(layer)
        return probs


def test_probabilities_are_formed_only_where_asked(tiny_model, monkeypatch):
    explicit_calls = []
    original = ControlledAttnProcessor._explicit

    def spy(self, *args):
        explicit_calls.append(self.name)
        return original(self, *args)

    monkeypatch.setattr(ControlledAttnProcessor, "_explicit", spy)
    controller = CountingController(cross=True)
    latents = torch.randn(1, 4, 16, 16)
    context = tiny_model.encode_text(["a red circle"])
    before = dict(tiny_model.unet.attn_processors)
    with controlled_attention(tiny_model.unet, controller), torch.no_grad():
        out = tiny_model.unet(latents, 10, context).sample
    assert all(layer.is_cross for layer in controller.seen) and controller.seen
    assert all(name.endswith("attn2_processor") for name in explicit_calls)
    assert {type(p) for p in tiny_model.unet.attn_processors.values()} == {
        type(p) for p in before.values()}  # restored
    with torch.no_grad():
        plain = tiny_model.unet(latents, 10, context).sample
    assert torch.allclose(out, plain, atol=1e-5)  # explicit attention equals the fused one
