"""Malformed uploads against the local Bot API server: Telegram's refusals, never a 500.

Every bad file of ``tests/bad_images.py`` goes through every route that takes a file, from
the bot's side (``sendPhoto``, ``sendDocument``, ``sendMediaGroup``, ``sendSticker``,
``editMessageMedia``, ``uploadStickerFile``) and from a user's side (the control API's photo,
album, document and sticker routes). Photos are refused with Telegram's descriptions,
documents are accepted byte for byte, and the server keeps answering afterwards.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from botapi import BotApiServer, ControlClient, ControlError
from tests import bad_images

BAD = bad_images.all_bad()
# What Telegram answers for each file sent with sendPhoto.
PHOTO_REFUSAL = {
    "truncated-png": "IMAGE_PROCESS_FAILED",
    "truncated-jpeg": "IMAGE_PROCESS_FAILED",
    "truncated-gif": "IMAGE_PROCESS_FAILED",
    "truncated-webp": "IMAGE_PROCESS_FAILED",
    "header-only-png": "IMAGE_PROCESS_FAILED",
    "lying-header-png": "IMAGE_PROCESS_FAILED",
    "bomb-png": "PHOTO_INVALID_DIMENSIONS",
    "decodable-bomb-png": "PHOTO_INVALID_DIMENSIONS",
    "text-named-png": "IMAGE_PROCESS_FAILED",
}


class Bot:
    """Raw multipart Bot API calls, encoded as python-telegram-bot encodes them."""

    def __init__(self, http: aiohttp.ClientSession, server: BotApiServer) -> None:
        self.http = http
        self.base = f"{server.base_url}{server.token}"
        self.file_base = f"{server.base_file_url}{server.token}"

    async def call(self, method: str, files: dict[str, bytes] | None = None,
                   **params: Any) -> tuple[int, dict[str, Any]]:
        form = aiohttp.FormData()
        for key, value in params.items():
            form.add_field(key, value if isinstance(value, str) else json.dumps(value))
        for key, data in (files or {}).items():
            form.add_field(key, data, filename="picture.png", content_type="image/png")
        async with self.http.post(f"{self.base}/{method}", data=form) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def bot(server: BotApiServer) -> AsyncIterator[Bot]:
    async with aiohttp.ClientSession() as http:
        yield Bot(http, server)


def refused(answer: tuple[int, dict[str, Any]], description: str | None = None) -> str:
    """Assert a Telegram-style 400 (with ``description`` if given); returns the description."""
    status, body = answer
    assert status == 400 and body["ok"] is False and body["error_code"] == 400, body
    assert body["description"].startswith("Bad Request: "), body
    if description is not None:
        assert body["description"] == f"Bad Request: {description}"
    return body["description"]


@pytest.mark.parametrize("name", sorted(BAD))
async def test_bad_image_from_the_bot(name: str, server: BotApiServer, tg: ControlClient,
                                      bot: Bot) -> None:
    data = BAD[name]
    alice = await tg.user("Alice")
    chat = str(alice.id)

    refused(await bot.call("sendPhoto", {"photo": data}, chat_id=chat), PHOTO_REFUSAL[name])

    status, body = await bot.call("sendDocument", {"document": data}, chat_id=chat)
    assert status == 200, body
    document = body["result"]["document"]
    assert "thumbnail" not in document  # nothing whole to preview
    async with bot.http.get(f"{bot.base}/getFile?file_id={document['file_id']}") as resp:
        path = (await resp.json())["result"]["file_path"]
    async with bot.http.get(f"{bot.file_base}/{path}") as resp:
        assert await resp.read() == data

    good = bad_images.image(64, 48, "PNG")
    album = [{"type": "photo", "media": "attach://good"}, {"type": "photo", "media": "attach://bad"}]
    refused(await bot.call("sendMediaGroup", {"good": good, "bad": data}, chat_id=chat,
                           media=album), PHOTO_REFUSAL[name])
    status, body = await bot.call("sendPhoto", {"photo": good}, chat_id=chat)
    assert status == 200, body
    refused(await bot.call(
        "editMessageMedia", {"bad": data}, chat_id=chat,
        message_id=body["result"]["message_id"], media={"type": "photo", "media": "attach://bad"},
    ), PHOTO_REFUSAL[name])

    refused(await bot.call("sendSticker", {"sticker": data}, chat_id=chat))
    refused(await bot.call("uploadStickerFile", {"sticker": data}, user_id=chat,
                           sticker_format="static"))

    # Only the two good photos and the document were posted; nothing half-sent.
    sent = await tg.bot_messages(alice.id)
    assert [("photo" if m.photo else "document") for m in sent] == ["document", "photo"]
    calls = await tg.calls()
    assert calls and all(c.get("error_code") != 500 for c in calls)
    assert (await bot.call("getMe"))[0] == 200


@pytest.mark.parametrize("name", sorted(BAD))
async def test_bad_image_from_a_user(name: str, tg: ControlClient) -> None:
    data = BAD[name]
    alice = await tg.user("Alice")
    with pytest.raises(ControlError) as photo:
        await alice.send_photo(data)
    assert photo.value.status == 400 and "as a file" in str(photo.value)
    with pytest.raises(ControlError) as album:
        await alice.send_album([bad_images.image(64, 48, "JPEG"), data])
    assert album.value.status == 400
    with pytest.raises(ControlError) as sticker:
        await alice.send_sticker(data)
    assert sticker.value.status == 400

    sent = await alice.send_document(data, "photo.png", "image/png")
    assert sent.document["file_size"] == len(data) and "thumbnail" not in sent.document
    assert await tg.download(sent.document["file_id"]) == data
    updates = (await tg.updates())["pending"]
    assert [u["message"]["message_id"] for u in updates] == [sent.message_id]



async def test_broken_multipart_bodies_are_400s(server: BotApiServer, tg: ControlClient,
                                                bot: Bot) -> None:
    alice = await tg.user("Alice")
    broken = {"data": b"--b\r\nno headers here", "headers": {
        "Content-Type": "multipart/form-data; boundary=b"}}
    async with bot.http.post(f"{server.url}/control/chats/{alice.id}/photo", **broken) as resp:
        assert resp.status == 400 and "can't parse" in (await resp.json())["error"]
    async with bot.http.post(f"{bot.base}/sendPhoto", **broken) as resp:
        assert resp.status == 400
        assert (await resp.json())["description"] == "Bad Request: can't parse multipart form data"
