"""Grounding object words in their masks: captions that say which words name which object,
the masks training aims the attention at, and a loss that really moves the attention."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from engine.attention_control import controlled_attention
from world.grounding import (
    AttentionRecorder,
    grounding_loss,
    mask_at,
    scene_cells,
    share_inside,
    word_masks,
)
from world.render import render
from world.scene import POSITIONS, caption, grounded_caption, random_scene


def test_grounded_words_name_their_own_object():
    rng = random.Random(3)
    for _ in range(200):
        scene = random_scene(rng)
        state = rng.getstate()
        text, grounding = grounded_caption(scene, rng)
        rng.setstate(state)
        assert caption(scene, rng) == text  # same words, same draws from the rng
        words = text.split()
        assert set(grounding) == {o.position for o in scene.objects}
        for obj in scene.objects:
            named = [words[i] for i in grounding[obj.position]]
            assert obj.kind in named
            after = words[grounding[obj.position][-1] + 1:][:3]
            assert obj.position in after and after[0] in ("on", "in")


def test_a_replacing_word_is_what_gets_grounded():
    scene = random_scene(random.Random(5), max_objects=1)
    position = scene.objects[0].position
    text, grounding = grounded_caption(scene, words={position: "<cat>"})
    assert [text.split()[i] for i in grounding[position]] == [scene.objects[0].size, "<cat>"]


def test_word_masks_put_each_object_mask_on_its_words_tokens():
    scenes = [random_scene(random.Random(7), max_objects=3) for _ in range(2)]
    groundings = [grounded_caption(scenes[0])[1], {}]  # the second caption was dropped
    cells = [scene_cells(render(s).masks, (16,))[16] for s in scenes]
    masks, weights = word_masks(cells, groundings, tokens=40)
    rendered = render(scenes[0]).masks
    for position, words in groundings[0].items():
        expected = mask_at(rendered[position], 16).flatten().float()
        for word in words:
            assert torch.equal(masks[0, word + 1], expected)  # token = word + 1 (after BOS)
    grounded = {w + 1 for words in groundings[0].values() for w in words}
    assert set(torch.nonzero(weights[0]).flatten().tolist()) == grounded
    assert weights[1].sum() == 0 and masks[1].sum() == 0


def test_scene_cells_have_a_row_per_position_and_empty_rows_where_nothing_stands():
    scene = random_scene(random.Random(2), max_objects=1)
    grids = scene_cells(render(scene).masks, (16, 8))
    assert grids[16].shape == (len(POSITIONS), 256) and grids[8].shape == (len(POSITIONS), 64)
    for row, position in enumerate(POSITIONS):
        assert bool(grids[16][row].any()) == (scene.object_at(position) is not None)


def test_mask_at_keeps_cells_the_object_mostly_covers():
    mask = np.zeros((64, 64), np.float32)
    mask[0:16, 0:16] = 1.0
    cells = mask_at(mask, 16)
    assert cells.sum() == 16 and bool(cells[:4, :4].all())


def _recorder_with(maps: torch.Tensor) -> AttentionRecorder:
    recorder = AttentionRecorder((4,))
    recorder.maps[4].append(maps)
    return recorder


def test_grounding_loss_is_zero_inside_one_outside_and_between_for_uniform():
    inside = torch.zeros(1, 3, 16)
    inside[0, 1, :4] = 1.0  # token 1 names an object covering the first four cells
    weights = torch.tensor([[0.0, 1.0, 0.0]])
    targets = {4: (inside, weights)}
    on_mask = torch.zeros(1, 16, 3)
    on_mask[0, :4, 1] = 0.25
    off_mask = torch.zeros(1, 16, 3)
    off_mask[0, 8:, 1] = 0.125
    uniform = torch.full((1, 16, 3), 1 / 3)
    assert grounding_loss(_recorder_with(on_mask), targets).item() == pytest.approx(0.0)
    assert grounding_loss(_recorder_with(off_mask), targets).item() == pytest.approx(1.0)
    assert grounding_loss(_recorder_with(uniform), targets).item() == pytest.approx(0.75 ** 2)
    assert share_inside(uniform[0, :, 1], inside[0, 1]).item() == pytest.approx(0.25)


def test_the_grounding_loss_moves_a_real_unets_attention_into_the_masks(tiny_model):
    unet = _fresh_copy(tiny_model.unet)
    tokenizer, text_encoder = tiny_model.tokenizer, tiny_model.text_encoder
    rng = random.Random(11)
    scenes = [random_scene(rng, max_objects=1, allow_characters=False) for _ in range(4)]
    texts, groundings = zip(*(grounded_caption(s) for s in scenes), strict=True)
    ids = tokenizer(list(texts), padding="max_length", max_length=tokenizer.model_max_length,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        context = text_encoder(ids)[0].float()
    side = 16
    cells = [scene_cells(render(s).masks, (side,))[side] for s in scenes]
    targets = {side: word_masks(cells, list(groundings), tokenizer.model_max_length)}
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(len(scenes), 4, 16, 16, generator=generator)
    timesteps = torch.full((len(scenes),), 500)
    optimiser = torch.optim.Adam(unet.parameters(), lr=3e-3)

    def step() -> float:
        recorder = AttentionRecorder((side,))
        with controlled_attention(unet, recorder):
            unet(latents, timesteps, context)
        loss = grounding_loss(recorder, targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return loss.item()

    first = step()
    for _ in range(15):
        last = step()
    assert last < 0.7 * first, (first, last)


def _fresh_copy(unet: torch.nn.Module) -> torch.nn.Module:
    """A float32 trainable copy, so the session-wide tiny model stays as it was."""
    import copy

    clone = copy.deepcopy(unet).float().train()
    clone.requires_grad_(True)
    return clone
