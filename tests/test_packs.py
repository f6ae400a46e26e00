"""Sticker packs of a learned word: the engine's plan and prompts, and ``/pack`` end to end
(the real bot and worker processes on the bundled model, over HTTP against our Bot API)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.concepts import Concept
from engine.errors import ModelLoadError, PromptError
from engine.model import BUNDLED_MODEL
from engine.packs import (
    BATCH,
    EMOJI_SIDE,
    PACK_FILE,
    Expression,
    PackPlan,
    best_drawing,
    draw_candidates,
    emoji_image,
    expression_phrase,
    expressions_from_setting,
    load_pack_plan,
    make_pack,
)
from tests.helpers import BOT_USERNAME, learn, quick_stack


def test_plan_from_the_model_folder_or_the_setting(tmp_path):
    bundled = load_pack_plan(BUNDLED_MODEL, "happy")
    assert len(bundled.expressions) == 6 and len(bundled.groups) == 2
    assert len({e.emoji for e in bundled.expressions}) == 6  # one emoji each
    plain = load_pack_plan(tmp_path, "happy, sad:🥲 ,,angry")
    assert [(e.name, e.emoji) for e in plain.expressions] == [
        ("happy", "😀"), ("sad", "🥲"), ("angry", "😠")]
    with pytest.raises(ValueError, match="names none"):
        expressions_from_setting(" , ")
    (tmp_path / PACK_FILE).write_text(json.dumps({"template": "no placeholder",
                                                  "expressions": []}))
    with pytest.raises(ModelLoadError, match="pack plan"):
        load_pack_plan(tmp_path, "happy")


def test_an_expression_takes_the_place_of_the_words_own_eyes_and_mouth():
    plan = PackPlan("a big {} in the center", (Expression("sleepy", ("sleepy", "stern"), "😴"),),
                    (("beady", "wideeyed", "sleepy"), ("smiling", "gaping", "stern")))
    concept = Concept("mochi", "object", torch.zeros(4, 8))
    readout = ["teal", "wideeyed", "gaping", "creature"]  # what its vectors are nearest to
    assert expression_phrase(concept, readout, plan, plan.expressions[0]) == (
        "<mochi> sleepy stern <mochi>_3")
    # a word without eyes among its vectors gets the eye word said before it
    assert expression_phrase(concept, ["teal", "round", "gaping", "creature"], plan,
                             plan.expressions[0]) == "sleepy <mochi> <mochi>_1 stern <mochi>_3"


def test_emoji_is_a_centred_100px_square():
    wide = Image.new("RGBA", (512, 256), (255, 0, 0, 255))
    emoji = emoji_image(wide)
    assert emoji.size == (EMOJI_SIDE, EMOJI_SIDE)
    assert emoji.getpixel((50, 50))[3] == 255 and emoji.getpixel((50, 5))[3] == 0


def test_tiny_model_pack_without_segmenter_or_captioner(tiny_model):
    plan = load_pack_plan(tiny_model.source, "happy,sad")
    concept = Concept("mochi", "object", torch.randn(2, tiny_model.text_width) * 0.01)
    drawn = make_pack(tiny_model, concept, plan, candidates=1, steps=2)
    assert [s.expression.name for s in drawn] == ["happy", "sad"]
    for sticker in drawn:
        assert max(sticker.sticker.size) == 512 and sticker.sticker.mode == "RGBA"
        assert "<mochi>" in sticker.prompt and sticker.score is None
    with pytest.raises(PromptError, match="stickers 1 to 2"):
        make_pack(tiny_model, concept, plan, which=[5], steps=2)
    with pytest.raises(PromptError, match="style"):
        make_pack(tiny_model, Concept("ink", "style", concept.vectors), plan, steps=2)
    with pytest.raises(ValueError, match="at least one drawing"):
        make_pack(tiny_model, concept, plan, candidates=0, steps=2)


def test_the_kept_drawing_shows_the_word_first_then_its_expression():
    # each drawing's (share of the word's own words, share of the expression's words)
    assert best_drawing([(0.75, 1.0), (1.0, 0.5), (1.0, 1.0)]) == 2
    assert best_drawing([(0.75, 1.0), (1.0, 0.0)]) == 1  # the word, though with another face
    assert best_drawing([(0.5, 0.5), (1.0, 0.5), (1.0, 0.5)]) == 1  # a tie: the first


def test_candidates_are_drawn_in_batches_each_from_its_own_seed(tiny_model):
    options = ["a photo of a cat", "a photo of a dog"]
    prompts, images = draw_candidates(tiny_model, options, BATCH + 2, steps=2, seed=3)
    half = BATCH // 2
    assert prompts == [options[0]] * half + [options[1]] * (BATCH - half) + options
    assert len(images) == BATCH + 2
    _, first_batch = draw_candidates(tiny_model, options, BATCH, steps=2, seed=3)
    # more candidates only add drawings to what fewer would draw
    assert all(np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(images[:BATCH], first_batch, strict=True))
    assert not np.array_equal(np.asarray(images[BATCH]), np.asarray(images[0]))  # a new seed


@pytest.fixture
async def bundled_stack(tmp_path):
    async with quick_stack(BUNDLED_MODEL, tmp_path / "data") as running:
        yield running


@pytest.mark.slow  # the real bot and worker processes
async def test_pack_end_to_end_sets_emoji_progress_and_redo(bundled_stack):
    _, tg = bundled_stack
    alice = await tg.user("Alice")
    await alice.say("/pack mochi")
    refusal = await alice.wait_reply(timeout=60)
    assert "don't know the word" in refusal.text
    await learn(tg, alice)

    request = await alice.say("/pack mochi")
    ready = await alice.wait_reply(contains="pack is ready", timeout=600)
    labels = [b["text"] for b in ready.buttons]
    assert len(labels) == 6 and all(label.startswith("↻") for label in labels)
    sent = await alice.wait_reply(sticker=True, after=request.message_id, timeout=60)
    # progress: the status message named the stickers while they were drawn
    history = await tg.messages(alice.chat_id, from_bot=True, after=request.message_id)
    versions = [t or "" for record in history for t in record.texts]
    assert any("drawing sticker" in t for t in versions), versions

    sets = {s["name"]: s for s in await tg.sticker_sets()}
    job_id = int(ready.buttons[0]["callback_data"].split(":")[1])
    name = f"mochi_{job_id}_by_{BOT_USERNAME}"
    emoji_name = f"mochi_{job_id}_emoji_by_{BOT_USERNAME}"
    assert set(sets) == {name, emoji_name} and name in ready.text and emoji_name in ready.text
    stickers, emoji = sets[name]["stickers"], sets[emoji_name]["stickers"]
    assert len(stickers) == 6 and len(emoji) == 6
    assert sets[name]["owner_id"] == alice.id and sets[emoji_name]["sticker_type"] == "custom_emoji"
    assert len({s["emoji"] for s in stickers}) == 6  # an emoji each
    assert [s["emoji"] for s in emoji] == [s["emoji"] for s in stickers]
    assert sent.sticker["file_id"] == stickers[0]["file_id"]
    for sticker in stickers:
        assert max(sticker["width"], sticker["height"]) == 512
        picture = Image.open(io.BytesIO(await tg.download(sticker["file_id"])))
        assert picture.format == "WEBP" and picture.mode == "RGBA"
        alpha = picture.getchannel("A")
        assert alpha.getextrema() == (0, 255)  # cut out: transparent around the subject
    assert all((e["width"], e["height"]) == (100, 100) for e in emoji)

    pressed = await alice.press(ready, text=labels[2])
    redone = await alice.wait_reply(sticker=True, after=ready.message_id, timeout=300)
    await tg.wait_for_answer(pressed["id"])
    after = {s["name"]: s for s in await tg.sticker_sets()}
    new_stickers = after[name]["stickers"]
    assert len(new_stickers) == 6 and len(after[emoji_name]["stickers"]) == 6
    assert new_stickers[2]["file_id"] != stickers[2]["file_id"]
    assert redone.sticker["file_id"] == new_stickers[2]["file_id"]
    assert [s["file_id"] for i, s in enumerate(new_stickers) if i != 2] == [
        s["file_id"] for i, s in enumerate(stickers) if i != 2]
    assert new_stickers[2]["emoji"] == stickers[2]["emoji"]
    assert after[emoji_name]["stickers"][2]["file_id"] != emoji[2]["file_id"]


@pytest.mark.slow  # the real bot and worker processes
async def test_a_bare_pack_replying_in_a_group_packs_the_word_the_message_names(bundled_stack):
    _, tg = bundled_stack
    alice, bob = await tg.user("Alice"), await tg.user("Bob")
    await learn(tg, alice)
    group = (await tg.create_group("Friends", [alice.id, bob.id]))["id"]
    alice_in, bob_in = alice.in_chat(group), bob.in_chat(group)
    await alice_in.say("/share mochi")
    shared = await alice_in.wait_reply(contains="can now use", timeout=60)
    chatter = await bob_in.say("what a sunny day")
    await bob_in.say("/pack", reply_to=chatter)
    asked = await bob_in.wait_reply(timeout=60)
    assert "don't see a word you taught me" in asked.text and "mochi" in asked.text

    request = await bob_in.say("/pack", reply_to=shared)  # the bot's 'can now use "mochi"'
    ready = await bob_in.wait_reply(contains="pack is ready", timeout=600)
    assert ready.reply_to_message_id == request.message_id
    job_id = int(ready.buttons[0]["callback_data"].split(":")[1])
    sets = {s["name"]: s for s in await tg.sticker_sets()}
    name = f"mochi_{job_id}_by_{BOT_USERNAME}"
    assert set(sets) == {name, f"mochi_{job_id}_emoji_by_{BOT_USERNAME}"}
    assert sets[name]["owner_id"] == bob.id and len(sets[name]["stickers"]) == 6
    sticker = await bob_in.wait_reply(sticker=True, after=request.message_id, timeout=60)
    assert sticker.sticker["file_id"] == sets[name]["stickers"][0]["file_id"]
