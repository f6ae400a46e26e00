"""The whole service end to end: the real bot process and the real worker process on a tiny
model, talking through our local Bot API server, driven as users would drive Telegram."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from botapi.client import ControlClient
from engine.model import BUNDLED_MODEL
from playground.harness import StackProcesses
from tests.helpers import BOT_USERNAME, SCENE, SMALL_SCENE, learn, quick_stack, sample

pytestmark = pytest.mark.slow  # the real bot and worker processes


@pytest.fixture
async def stack(request, tiny_model_dir, tmp_path
                ) -> AsyncIterator[tuple[StackProcesses, ControlClient]]:
    """The service on the tiny model, or on the bundled one when parametrized with "bundled";
    the bot token must reach no log."""
    model_dir = BUNDLED_MODEL if getattr(request, "param", "tiny") == "bundled" else tiny_model_dir
    async with quick_stack(model_dir, tmp_path / "data") as running:
        yield running


@pytest.mark.parametrize("stack", ["tiny", "bundled"], indirect=True)
async def test_learn_edit_explain_and_sticker_in_private(stack, request):
    service, tg = stack
    alice = await tg.user("Alice")
    learned = await learn(tg, alice)
    assert learned.photo is not None  # a preview of the new word
    # the bundled model's captioner words the photos, and the word starts there
    seen = 'what I saw in your photos: "teal wideeyed pointyeared gaping spotted creature"'
    assert (seen in learned.text) == (request.node.callspec.params["stack"] == "bundled")

    photo = await alice.send_photo(sample("scenes/scene-1.png"),
                                   caption=f"replace circle with mochi | {SCENE}")
    result = await alice.wait_reply(photo=True, timeout=180)
    assert result.reply_to_message_id == photo.message_id
    edited = Image.open(io.BytesIO(await tg.download(result.photo_file_id)))
    assert min(edited.size) >= 256  # small model outputs are enlarged for the chat
    labels = [button["text"] for button in result.buttons]
    assert len(labels) == 3

    await alice.press(result, text=labels[0])  # "Why?": the attention maps
    maps = await alice.wait_reply(photo=True, after=result.message_id, timeout=60)
    image = Image.open(io.BytesIO(await tg.download(maps.photo_file_id)))
    # a grid for a phone screen (one panel per word the user wrote), not a long strip
    assert 0.5 <= image.width / image.height <= 2 and image.width >= 256

    await alice.say(f"/sticker {SCENE}", reply_to=result)
    sticker = await alice.wait_reply(sticker=True, after=maps.message_id, timeout=180)
    assert sticker.sticker is not None


async def test_a_stranger_cannot_use_my_word_and_a_group_can_once_shared(stack):
    service, tg = stack
    alice, bob = await tg.user("Alice"), await tg.user("Bob")
    await learn(tg, alice)
    await bob.send_photo(sample("scenes/scene-2.png"), caption=f"add mochi | {SMALL_SCENE}")
    refusal = await bob.wait_reply(timeout=60)
    assert refusal.photo is None and "mochi" in refusal.text.lower()

    group = (await tg.create_group("Friends", [alice.id, bob.id]))["id"]
    alice_in, bob_in = alice.in_chat(group), bob.in_chat(group)
    await alice_in.say("/share mochi")
    await alice_in.wait_reply(contains="mochi", timeout=60)
    picture = await bob_in.send_photo(sample("scenes/scene-2.png"))
    await bob_in.say(f"/add@{BOT_USERNAME} mochi | {SMALL_SCENE}", reply_to=picture)
    assert (await bob_in.wait_reply(photo=True, timeout=180)).photo is not None


async def test_bad_inputs_get_polite_answers_and_the_bot_lives_on(stack):
    service, tg = stack
    alice = await tg.user("Alice")
    await alice.send_document(b"%PDF-1.4 not a picture", "notes.pdf", "application/pdf")
    assert "isn't a picture" in (await alice.wait_reply(timeout=60)).text
    await alice.send_photo(sample("scenes/scene-1.png"), caption="paint it blue")
    assert (await alice.wait_reply(timeout=60)).text
    await alice.send_photo(sample("scenes/scene-1.png"), caption=f"remove horse | {SCENE}")
    failure = await alice.wait_reply(contains="horse", timeout=180)
    assert failure.photo is None
    await alice.say("/learn ../../etc")
    assert (await alice.wait_reply(timeout=60)).text
    await alice.say("/start")
    assert "learn" in (await alice.wait_reply(timeout=60)).text.lower()
    assert all(p.running for p in service.processes.values())


async def test_a_worker_killed_mid_job_is_replaced_and_nothing_is_lost(stack):
    """Each wait ends at an answer; the bounds are generous, since a worker loading its models
    on a machine whose cores are shared may take minutes."""
    service, tg = stack
    service.kill("worker")
    service.start("worker", ONEWORD_LEARN_STEPS="3000")
    alice = await tg.user("Alice")
    await alice.say("/learn mochi")
    await alice.wait_reply(contains="photos", timeout=600)
    await alice.send_album([sample(f"creature/creature-{i}.png") for i in range(1, 5)])
    await alice.wait_reply(contains="learning: step", timeout=600)  # the job is running
    service.kill("worker")
    service.start("worker")
    learned = await alice.wait_reply(contains="I learned", timeout=600)
    assert learned.photo is not None
