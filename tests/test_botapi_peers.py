"""Bots written with aiogram 3 and pyTelegramBotAPI against our Bot API server.

The same scenarios run for each library (``tests/peer_bots.py``): polling with offsets (no
update delivered twice, also across a restart), HTML messages, inline buttons and callback
queries, photo download and upload, documents, group commands under privacy mode, and
webhooks, including aiogram's replies in the webhook's HTTP answer. Everything stays on
127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from PIL import Image

from botapi import BotApiServer, ControlClient, MessageRecord
from tests import bad_images
from tests.peer_bots import PEERS

TIMEOUT = 20.0


@pytest.fixture(params=sorted(PEERS))
def peer(request: pytest.FixtureRequest, server: BotApiServer,
         monkeypatch: pytest.MonkeyPatch) -> Any:
    if request.param == "pytelegrambotapi":
        from telebot import asyncio_helper

        # the library sets its endpoints as module globals: restore them afterwards
        monkeypatch.setattr(asyncio_helper, "API_URL", asyncio_helper.API_URL)
        monkeypatch.setattr(asyncio_helper, "FILE_URL", asyncio_helper.FILE_URL)
    return PEERS[request.param](server)


def picture(width: int = 96, height: int = 64) -> bytes:
    """A JPEG whose left half is red and right half blue (mirroring swaps them)."""
    image = Image.new("RGB", (width, height), (220, 20, 20))
    image.paste((20, 20, 220), (width // 2, 0, width, height))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def left_is_blue(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        red, _, blue = image.convert("RGB").getpixel((2, image.height // 2))
    return blue > 150 and red < 100


async def getupdates_calls(tg: ControlClient) -> int:
    return (await tg.stats())["calls"].get("getUpdates", 0)


async def polled_twice_more(tg: ControlClient) -> None:
    """Wait until the bot made two more getUpdates calls: a redelivery would be seen by now.

    (Successful getUpdates calls change nothing in the world, so this polls the counter.)
    """
    target = await getupdates_calls(tg) + 2
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while await getupdates_calls(tg) < target:
        assert asyncio.get_running_loop().time() < deadline, "the bot stopped polling"
        await asyncio.sleep(0.05)


async def replies(tg: ControlClient, chat_id: int) -> list[MessageRecord]:
    return await tg.bot_messages(chat_id)


@pytest.mark.slow  # a whole model run, or waits out a peer client's polling
async def test_polling_offsets_no_update_twice(peer: Any, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    for text in ("one", "two <&> three"):
        await alice.say(text)  # queued before the bot starts
    async with peer.polling():
        await tg.wait_for(alice.id, contains="two <&> three", timeout=TIMEOUT)
        await polled_twice_more(tg)
        assert (await tg.updates())["pending"] == []  # the offset confirmed them
    async with peer.polling():  # a restart must not bring the old updates back
        await alice.say("four")
        await tg.wait_for(alice.id, contains="four", timeout=TIMEOUT)
        await polled_twice_more(tg)
    texts = [m.text for m in await replies(tg, alice.id)]
    assert texts == ["one", "two <&> three", "four"]
    first = (await replies(tg, alice.id))[0]
    assert first.entities == [{"type": "code", "offset": 0, "length": 3}]


async def test_html_buttons_and_callback_queries(peer: Any, tg: ControlClient) -> None:
    alice = await tg.user("Alice <Ann>")
    async with peer.polling():
        await alice.say("/start")
        hello = await alice.wait_reply(buttons=True, timeout=TIMEOUT)
        assert hello.text == "Hello, Alice <Ann>!"
        assert hello.entities == [{"type": "bold", "offset": 0, "length": 5},
                                  {"type": "italic", "offset": 7, "length": 11}]
        assert [b["callback_data"] for b in hello.buttons] == ["choice:yes", "choice:no"]
        query = await alice.press(hello, "choice:no")
        answer = await tg.wait_for_answer(query["id"], timeout=TIMEOUT)
        assert answer["text"] == "You chose no"
        edited = await tg.wait_for(alice.id, contains="Chosen: no", timeout=TIMEOUT)
    assert edited.message_id == hello.message_id and edited.edit_count == 1
    assert edited.buttons == [] and edited.entities == [
        {"type": "bold", "offset": 8, "length": 2}]


async def test_photo_download_and_upload(peer: Any, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    async with peer.polling():
        sent = await alice.send_photo(picture(96, 64))
        back = await alice.wait_reply(photo=True, timeout=TIMEOUT)
    assert back.reply_to_message_id == sent.message_id
    assert back.text == "mirrored 96x64"
    assert back.entities == [{"type": "bold", "offset": 9, "length": 5}]
    assert (back.photo[-1]["width"], back.photo[-1]["height"]) == (96, 64)
    assert left_is_blue(await tg.download(back.photo_file_id))


async def test_documents_round_trip(peer: Any, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    payload = bytes(range(256)) * 40
    async with peer.polling():
        sent = await alice.send_document(payload, "data.bin", "application/octet-stream")
        back = await alice.wait_reply(document=True, timeout=TIMEOUT)
    assert back.reply_to_message_id == sent.message_id
    assert back.document["file_name"] == "echo-data.bin"
    assert back.text == f"{len(payload)} bytes"
    assert await tg.download(back.document["file_id"]) == payload


async def test_albums_and_stickers_both_ways(peer: Any, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    async with peer.polling():
        sent = await alice.send_album([picture(96, 64), picture(64, 96)])
        for message in sent:  # each photo of a user's album is one update, one reply
            await tg.wait_for(alice.id, lambda m, i=message.message_id: m.reply_to_message_id == i,
                              photo=True, timeout=TIMEOUT)
        sticker = await alice.send_sticker(bad_images.image(512, 512, "WEBP"), emoji="🙂")
        back = await alice.wait_reply(sticker=True, timeout=TIMEOUT)
        assert back.sticker["file_id"] == sticker.sticker["file_id"]
        last = back.message_id
        await alice.say("/album")
        await tg.wait_for(alice.id, after=last + 1, photo=True, timeout=TIMEOUT)
    album = [m for m in await replies(tg, alice.id) if m.message_id > last]
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id is not None
    assert album[0].text == "album" and album[0].entities == [
        {"type": "italic", "offset": 0, "length": 5}]
    colours = []
    for message in album:
        with Image.open(io.BytesIO(await tg.download(message.photo_file_id))) as image:
            colours.append(image.convert("RGB").getpixel((40, 30)))
    assert colours[0][0] > 150 > colours[0][2] and colours[1][2] > 150 > colours[1][0]


async def test_group_commands_under_privacy_mode(peer: Any, tg: ControlClient) -> None:
    await tg.set_privacy_mode(True)
    alice = await tg.user("Alice")
    bob = await tg.user("Bob")
    group = await tg.create_group("Friends", [alice.id, bob.id])
    in_group = [alice.in_chat(group["id"]), bob.in_chat(group["id"])]
    async with peer.polling():
        await in_group[0].say("just chatting")  # hidden from the bot by privacy mode
        await in_group[0].say("/count")
        await in_group[0].wait_reply(contains="count: 1", timeout=TIMEOUT)
        await in_group[1].say("/count@oneword_test_bot")
        last = await in_group[1].wait_reply(contains="count: 2", timeout=TIMEOUT)
        await polled_twice_more(tg)
    assert last.reply_to_message_id == in_group[1].last_sent
    assert [m.text for m in await replies(tg, group["id"])] == ["count: 1", "count: 2"]


async def test_webhook(peer: Any, server: BotApiServer, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    async with peer.webhook():
        info = (await tg.state())["webhook"]
        assert info["url"].endswith("/hook") and info["secret_token"]
        await alice.say("hi <there>")
        await tg.wait_for(alice.id, contains="hi <there>", timeout=TIMEOUT)
        await alice.send_photo(picture(64, 48))
        back = await alice.wait_reply(photo=True, timeout=TIMEOUT)
        assert left_is_blue(await tg.download(back.photo_file_id))
        await alice.say("/start")
        hello = await alice.wait_reply(buttons=True, timeout=TIMEOUT)
        query = await alice.press(hello, "choice:yes")
        assert (await tg.wait_for_answer(query["id"], timeout=TIMEOUT))["text"] == "You chose yes"
        await tg.wait_for(alice.id, contains="Chosen: yes", timeout=TIMEOUT)
    assert (await tg.updates())["pending"] == []
    texts = [m.text for m in await replies(tg, alice.id)]
    assert texts == ["hi <there>", "mirrored 64x48", "Chosen: yes"]
    via_reply = [c["method"] for c in await tg.calls() if c.get("via") == "webhook_reply"]
    if peer.name == "aiogram":  # aiogram answers webhook updates with the method itself
        assert via_reply == ["sendMessage", "sendPhoto", "sendMessage", "editMessageText"]
        assert all(c["ok"] for c in await tg.calls() if c.get("via") == "webhook_reply")
    else:
        assert via_reply == []
