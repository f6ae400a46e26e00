"""Sticker sets and custom emoji on our Bot API server: Telegram's rules and refusals."""

from __future__ import annotations

import aiohttp
import pytest

from botapi import BotApiServer, ControlClient
from botapi.stickers import MAX_STICKERS
from tests.botapi_calls import Api, image_bytes

BOT = "oneword_test_bot"


@pytest.fixture
def api(http: aiohttp.ClientSession, server: BotApiServer) -> Api:
    return Api(http, server)


def spec(ref: str, emoji: str = "😀") -> dict:
    return {"sticker": ref, "format": "static", "emoji_list": [emoji]}


async def upload(api: Api, user_id: int, data: bytes) -> str:
    status, body = await api.form("uploadStickerFile", files={"sticker": (data, "s.png")},
                                  user_id=str(user_id), sticker_format="static")
    assert status == 200, body
    return body["result"]["file_id"]


async def test_custom_emoji_sets_take_100px_squares_only(api: Api, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    emoji = await upload(api, alice.id, image_bytes(100, 100, "PNG"))
    sticker = await upload(api, alice.id, image_bytes(512, 400, "PNG"))
    name = f"mochi_emoji_by_{BOT}"
    status, body = await api.form("createNewStickerSet", user_id=str(alice.id), name=name,
                                  title="Mochi", sticker_type="custom_emoji",
                                  stickers=[spec(sticker)])
    assert (status, body["description"]) == (400, "Bad Request: STICKER_PNG_DIMENSIONS")
    status, body = await api.form("createNewStickerSet", user_id=str(alice.id), name=name,
                                  title="Mochi", sticker_type="custom_emoji",
                                  stickers=[spec(emoji, "😺")])
    assert status == 200, body
    emoji_set = await api.ok("getStickerSet", name=name)
    assert emoji_set["sticker_type"] == "custom_emoji"
    (first,) = emoji_set["stickers"]
    assert first["type"] == "custom_emoji" and first["custom_emoji_id"]
    assert (first["width"], first["height"], first["emoji"]) == (100, 100, "😺")
    # a regular set refuses the 100 px square, an emoji set a 512 px sticker
    regular = f"mochi_by_{BOT}"
    await api.form("createNewStickerSet", user_id=str(alice.id), name=regular, title="Mochi",
                   stickers=[spec(sticker)])
    status, body = await api.form("addStickerToSet", user_id=str(alice.id), name=regular,
                                  sticker=spec(emoji))
    assert body["description"] == "Bad Request: STICKER_PNG_DIMENSIONS"
    status, body = await api.form("addStickerToSet", user_id=str(alice.id), name=name,
                                  sticker=spec(sticker))
    assert body["description"] == "Bad Request: STICKER_PNG_DIMENSIONS"


async def test_sticker_set_refusals(api: Api, tg: ControlClient) -> None:
    alice, bob = await tg.user("Alice"), await tg.user("Bob")
    sticker = await upload(api, alice.id, image_bytes(512, 512, "PNG"))
    status, body = await api.form("uploadStickerFile", files={"sticker": (
        image_bytes(640, 480, "PNG"), "s.png")}, user_id=str(alice.id), sticker_format="static")
    assert body["description"] == "Bad Request: STICKER_PNG_DIMENSIONS"
    status, body = await api.form("uploadStickerFile", files={"sticker": (
        image_bytes(512, 512, "JPEG"), "s.jpg")}, user_id=str(alice.id), sticker_format="static")
    assert body["description"] == "Bad Request: STICKER_PNG_NOPNG"
    for bad_name in ("mochi_by_other_bot", "9mochi_by_" + BOT, "mo__chi_by_" + BOT):
        status, body = await api.form("createNewStickerSet", user_id=str(alice.id),
                                      name=bad_name, title="M", stickers=[spec(sticker)])
        assert body["description"] == "Bad Request: invalid sticker set name is specified"
    name = f"mochi_by_{BOT}"
    status, body = await api.form("createNewStickerSet", user_id=str(alice.id), name=name,
                                  title="M", sticker_type="animated", stickers=[spec(sticker)])
    assert body["description"] == "Bad Request: wrong sticker type specified"
    status, body = await api.form("createNewStickerSet", user_id=str(alice.id), name=name,
                                  title="M", stickers=[spec(sticker)] * 51)
    assert body["description"] == "Bad Request: STICKERS_TOO_MUCH"
    status, body = await api.form("createNewStickerSet", user_id=str(alice.id), name=name,
                                  title="M", stickers=[{**spec(sticker), "emoji_list": []}])
    assert body["description"] == "Bad Request: STICKER_EMOJI_INVALID"
    status, body = await api.form("createNewStickerSet", user_id=str(alice.id), name=name,
                                  title="M", stickers=[spec(sticker)] * 50)
    assert status == 200, body
    status, body = await api.form("createNewStickerSet", user_id=str(alice.id), name=name,
                                  title="M", stickers=[spec(sticker)])
    assert body["description"] == "Bad Request: sticker set name is already occupied"
    status, body = await api.form("addStickerToSet", user_id=str(bob.id), name=name,
                                  sticker=spec(sticker))
    assert body["description"] == "Bad Request: STICKERSET_INVALID"  # not Bob's set
    for _ in range(MAX_STICKERS["regular"] - 50):
        status, body = await api.form("addStickerToSet", user_id=str(alice.id), name=name,
                                      sticker=spec(sticker))
        assert status == 200, body
    status, body = await api.form("addStickerToSet", user_id=str(alice.id), name=name,
                                  sticker=spec(sticker))
    assert body["description"] == "Bad Request: STICKERS_TOO_MUCH"
    assert len((await api.ok("getStickerSet", name=name))["stickers"]) == 120


async def test_replace_sticker_keeps_its_place(api: Api, tg: ControlClient) -> None:
    alice, bob = await tg.user("Alice"), await tg.user("Bob")
    first = await upload(api, alice.id, image_bytes(512, 512, "PNG", (200, 0, 0)))
    second = await upload(api, alice.id, image_bytes(512, 300, "PNG", (0, 200, 0)))
    name = f"pack_by_{BOT}"
    await api.form("createNewStickerSet", user_id=str(alice.id), name=name, title="P",
                   stickers=[spec(first, "😀"), spec(first, "😴")])
    old = (await api.ok("getStickerSet", name=name))["stickers"]
    status, body = await api.form("replaceStickerInSet", user_id=str(bob.id), name=name,
                                  old_sticker=old[0]["file_id"], sticker=spec(second))
    assert body["description"] == "Bad Request: STICKERSET_INVALID"
    status, body = await api.form("replaceStickerInSet", user_id=str(alice.id), name=name,
                                  old_sticker="no-such-sticker", sticker=spec(second))
    assert body["description"] == "Bad Request: STICKER_INVALID"
    status, body = await api.form("replaceStickerInSet", user_id=str(alice.id), name=name,
                                  old_sticker=old[0]["file_id"], sticker=spec(second, "🙂"))
    assert status == 200, body
    new = (await api.ok("getStickerSet", name=name))["stickers"]
    assert [s["file_id"] for s in new][1] == old[1]["file_id"]
    assert new[0]["file_id"] != old[0]["file_id"] and new[0]["emoji"] == "🙂"
    assert (new[0]["width"], new[0]["height"]) == (512, 300)
