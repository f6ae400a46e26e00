"""End-to-end tests of the local Bot API server (``botapi``) over real HTTP.

Part 1 drives the server with raw aiohttp requests to pin Telegram's envelope and error
texts; part 2 runs a real python-telegram-bot ``Application`` against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from botapi import BotApiServer, ControlClient, ControlError
from tests.botapi_calls import Api, dimensions, image_bytes

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


@pytest.fixture
def api(http: aiohttp.ClientSession, server: BotApiServer) -> Api:
    return Api(http, server)


# --------------------------------------------------------------------------- envelope


async def test_get_me_envelope_and_auth_errors(api: Api, http: aiohttp.ClientSession,
                                               server: BotApiServer) -> None:
    me = await api.ok("getMe")
    assert me["id"] == 123456789 and me["is_bot"] is True
    assert me["username"] == "oneword_test_bot"
    async with http.get(f"{api.base}/GETME") as resp:  # method names are case-insensitive
        assert resp.status == 200

    async with http.get(f"{server.base_url}987:wrong/getMe") as resp:
        assert resp.status == 401
        assert await resp.json() == {
            "ok": False, "error_code": 401, "description": "Unauthorized"
        }
    async with http.get(f"{server.base_url}not-a-token/getMe") as resp:
        assert resp.status == 404
    status, body = await api.json("sendTelepathy", chat_id=1)
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_send_message_form_encoded_like_ptb(api: Api, tg: ControlClient) -> None:
    alice = await tg.user("Alice", username="alice")
    question = await alice.say("hello bot")
    keyboard = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    status, body = await api.form(
        "sendMessage", chat_id=str(alice.id), text="<b>Hi</b> there",
        parse_mode="HTML", reply_markup=keyboard,
        reply_parameters={"message_id": question.message_id},
    )
    assert status == 200, body
    msg = body["result"]
    assert msg["from"]["id"] == 123456789 and msg["from"]["is_bot"] is True
    assert msg["chat"] == {"id": alice.id, "type": "private", "first_name": "Alice",
                           "username": "alice"}
    assert msg["text"] == "Hi there"
    assert msg["entities"] == [{"type": "bold", "offset": 0, "length": 2}]
    assert msg["reply_markup"] == keyboard
    assert msg["reply_to_message"]["message_id"] == question.message_id
    assert msg["reply_to_message"]["text"] == "hello bot"
    assert isinstance(msg["date"], int) and msg["message_id"] == question.message_id + 1

    status, body = await api.json("sendMessage", chat_id=424242, text="x")
    assert (status, body["description"]) == (400, "Bad Request: chat not found")
    status, body = await api.json("sendMessage", chat_id=alice.id, text="")
    assert (status, body["description"]) == (400, "Bad Request: message text is empty")
    status, body = await api.json("sendMessage", chat_id=alice.id, text="v1.0",
                                  parse_mode="MarkdownV2")
    assert status == 400
    assert body["description"] == (
        "Bad Request: can't parse entities: Character '.' is reserved and must be escaped "
        "with the preceding '\\'"
    )
    status, body = await api.json("sendMessage", chat_id=alice.id, text="x",
                                  reply_parameters={"message_id": 999})
    assert body["description"] == "Bad Request: message to be replied not found"
    status, body = await api.json(
        "sendMessage", chat_id=alice.id, text="x",
        reply_markup={"inline_keyboard": [[{"text": "a", "callback_data": "x" * 65}]]},
    )
    assert body["description"] == "Bad Request: BUTTON_DATA_INVALID"


async def test_edit_history_and_not_modified(api: Api, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    keyboard = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    sent = await api.ok("sendMessage", chat_id=alice.id, text="working…", reply_markup=keyboard)
    args = {"chat_id": alice.id, "message_id": sent["message_id"]}

    status, body = await api.json("editMessageText", text="working…", reply_markup=keyboard,
                                  **args)
    assert status == 400
    assert body == {"ok": False, "error_code": 400, "description": NOT_MODIFIED}

    edited = await api.ok("editMessageText", text="done", **args)
    assert edited["text"] == "done" and "reply_markup" not in edited  # keyboard dropped
    assert isinstance(edited["edit_date"], int)
    status, body = await api.json("editMessageReplyMarkup", **args)
    assert (status, body["description"]) == (400, NOT_MODIFIED)

    record = await tg.message(alice.id, sent["message_id"])
    assert record.texts == ["working…", "done"] and record.edit_count == 1

    user_msg = await alice.say("mine")
    status, body = await api.json("editMessageText", chat_id=alice.id,
                                  message_id=user_msg.message_id, text="hack")
    assert body["description"] == "Bad Request: message can't be edited"
    status, body = await api.json("editMessageText", chat_id=alice.id, message_id=77, text="x")
    assert body["description"] == "Bad Request: message to edit not found"

    assert await api.ok("deleteMessage", **args) is True
    status, body = await api.json("deleteMessage", **args)
    assert body["description"] == "Bad Request: message to delete not found"
    assert (await tg.message(alice.id, sent["message_id"])).deleted


# --------------------------------------------------------------------------- updates


async def test_get_updates_long_poll_offset_and_reset(api: Api, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    started = time.monotonic()
    assert await api.ok("getUpdates", timeout=0.3) == []
    assert time.monotonic() - started >= 0.25

    async def later() -> None:
        await asyncio.sleep(0.2)
        await alice.say("/add@oneword_test_bot mochi")

    task = asyncio.create_task(later())
    started = time.monotonic()
    updates = await api.ok("getUpdates", timeout=5)
    await task
    assert time.monotonic() - started < 2
    message = updates[0]["message"]
    assert message["text"] == "/add@oneword_test_bot mochi"
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 21}]
    assert message["from"]["id"] == alice.id

    first_id = updates[0]["update_id"]
    assert (await api.ok("getUpdates"))[0]["update_id"] == first_id  # not confirmed yet
    assert await api.ok("getUpdates", offset=first_id + 1) == []

    await tg.reset()
    bob = await tg.user("Bob")
    await bob.say("hi")
    after_reset = await api.ok("getUpdates", offset=first_id + 1)
    assert after_reset[0]["update_id"] > first_id  # ids never restart


async def test_second_poller_gets_conflict(api: Api) -> None:
    first = asyncio.create_task(api.json("getUpdates", timeout=5))
    await asyncio.sleep(0.1)
    assert await api.ok("getUpdates") == []
    status, body = await first
    assert status == 409
    assert body["description"] == (
        "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running"
    )


async def test_webhook_delivery(api: Api, tg: ControlClient) -> None:
    received: asyncio.Queue[tuple[dict[str, Any], str | None]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        await received.put((await request.json(), secret))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        alice = await tg.user("Alice")
        assert await api.ok("setWebhook", url=f"http://127.0.0.1:{port}/hook",
                            secret_token="s3cret") is True
        status, body = await api.json("getUpdates")
        assert status == 409 and "webhook is active" in body["description"]
        await alice.say("via webhook")
        update, secret = await asyncio.wait_for(received.get(), 5)
        assert update["message"]["text"] == "via webhook" and secret == "s3cret"
        assert (await api.ok("getWebhookInfo"))["pending_update_count"] == 0
        assert await api.ok("deleteWebhook") is True
        assert await api.ok("getUpdates") == []
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- limits


async def test_forced_429_envelope_and_count(api: Api, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    await tg.force_429(2, retry_after=3, methods=["sendMessage"])
    assert (await api.ok("getMe"))["is_bot"]  # other methods unaffected
    for _ in range(2):
        status, body = await api.json("sendMessage", chat_id=alice.id, text="x")
        assert status == 429
        assert body == {
            "ok": False, "error_code": 429,
            "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        }
    await api.ok("sendMessage", chat_id=alice.id, text="x")
    stats = await tg.stats()
    assert stats["served_429"] == 2 and stats["served_429_by_method"] == {"sendMessage": 2}
    assert stats["calls"]["sendMessage"] == 3


async def test_flood_mode_limits_private_and_group(api: Api, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    bob = await tg.create_user("Bob")
    group = await tg.create_group("Cats", [alice.id, bob["id"]])
    # one message per 5 s in private chats: wide enough not to be flaky on a busy machine
    await tg.flood_control(True, private_per_second=0.2, group_per_minute=2)
    await api.ok("sendMessage", chat_id=alice.id, text="1")
    status, body = await api.json("sendMessage", chat_id=alice.id, text="2")
    retry_after = body["parameters"]["retry_after"]
    assert status == 429 and 1 <= retry_after <= 5
    assert body["description"] == f"Too Many Requests: retry after {retry_after}"
    await api.ok("sendMessage", chat_id=group["id"], text="1")
    await api.ok("sendMessage", chat_id=group["id"], text="2")
    status, body = await api.json("sendMessage", chat_id=group["id"], text="3")
    assert status == 429 and 1 <= body["parameters"]["retry_after"] <= 60
    assert (await tg.stats())["served_429"] == 2
    await tg.flood_control(False)
    await api.ok("sendMessage", chat_id=alice.id, text="3")


# --------------------------------------------------------------------------- files


async def test_photo_upload_sizes_get_file_and_download(api: Api, tg: ControlClient,
                                                        http: aiohttp.ClientSession) -> None:
    alice = await tg.user("Alice")
    png = image_bytes(1000, 500, "PNG")
    status, body = await api.form("sendPhoto", files={"photo": (png, "in.png")},
                                  chat_id=str(alice.id), caption="*edited*",
                                  parse_mode="MarkdownV2")
    assert status == 200, body
    msg = body["result"]
    assert msg["caption"] == "edited"
    assert msg["caption_entities"] == [{"type": "bold", "offset": 0, "length": 6}]
    sizes = msg["photo"]
    assert [(s["width"], s["height"]) for s in sizes] == [(90, 45), (320, 160), (800, 400),
                                                          (1000, 500)]
    for size in sizes:
        assert {"file_id", "file_unique_id", "width", "height", "file_size"} <= size.keys()
        file = await api.ok("getFile", file_id=size["file_id"])
        assert file["file_size"] == size["file_size"]
        async with http.get(f"{api.file_base}/{file['file_path']}") as resp:
            data = await resp.read()
        assert len(data) == size["file_size"]
        assert dimensions(data) == (size["width"], size["height"])

    again = await api.ok("sendPhoto", chat_id=alice.id, photo=sizes[-1]["file_id"])
    assert again["photo"] == sizes  # re-sent by file_id
    status, body = await api.json("sendPhoto", chat_id=alice.id, photo="AgACnonsense")
    assert body["description"] == "Bad Request: wrong file identifier/HTTP URL specified"
    status, body = await api.form("sendPhoto", files={"photo": (b"\0" * (10 * 2**20 + 1), "a")},
                                  chat_id=str(alice.id))
    assert (status, body["description"]) == (400, "Bad Request: file is too big")
    status, body = await api.form("sendPhoto", files={"photo": (b"not an image", "a.jpg")},
                                  chat_id=str(alice.id))
    assert body["description"] == "Bad Request: IMAGE_PROCESS_FAILED"


async def test_user_documents_and_file_too_big(api: Api, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    as_file = await alice.send_document(image_bytes(300, 200, "PNG"), "cat.png", "image/png")
    doc = as_file.document
    assert doc["file_name"] == "cat.png" and doc["mime_type"] == "image/png"
    assert doc["thumbnail"]["width"] == 300 and doc["thumbnail"]["height"] == 200

    gif = io.BytesIO()
    Image.new("P", (40, 30)).save(gif, "GIF")
    animated = await alice.send_document(gif.getvalue(), "fun.gif", "image/gif")
    assert animated.animation["width"] == 40 and animated.document["mime_type"] == "image/gif"

    big = await alice.send_document(b"x" * (20 * 2**20 + 1), "big.bin")
    status, body = await api.json("getFile", file_id=big.document["file_id"])
    assert (status, body["description"]) == (400, "Bad Request: file is too big")
    file = await api.ok("getFile", file_id=doc["file_id"])
    assert file["file_path"].endswith(".png") and file["file_size"] == doc["file_size"]


async def test_sticker_sets(api: Api, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    sticker = image_bytes(512, 384, "PNG")
    status, body = await api.form("uploadStickerFile", files={"sticker": (sticker, "s.png")},
                                  user_id=str(alice.id), sticker_format="static")
    assert status == 200, body
    uploaded = body["result"]
    assert uploaded["file_size"] == len(sticker) and uploaded["file_path"]

    spec = {"sticker": uploaded["file_id"], "format": "static", "emoji_list": ["🐱"]}
    status, body = await api.form("createNewStickerSet", user_id=str(alice.id),
                                  name="mochi_set", title="Mochi", stickers=[spec])
    assert (status, body["description"]) == (
        400, "Bad Request: invalid sticker set name is specified"
    )
    name = "mochi_by_oneword_test_bot"
    status, body = await api.form("createNewStickerSet", user_id=str(alice.id), name=name,
                                  title="Mochi", stickers=[spec])
    assert status == 200 and body["result"] is True
    status, body = await api.form(
        "addStickerToSet", files={"pic": (image_bytes(300, 512, "PNG"), "p.png")},
        user_id=str(alice.id), name=name,
        sticker={"sticker": "attach://pic", "format": "static", "emoji_list": ["😺"]},
    )
    assert status == 200, body
    status, body = await api.form(
        "addStickerToSet", files={"pic": (image_bytes(100, 100, "PNG"), "p.png")},
        user_id=str(alice.id), name=name,
        sticker={"sticker": "attach://pic", "format": "static", "emoji_list": ["😺"]},
    )
    assert body["description"] == "Bad Request: STICKER_PNG_DIMENSIONS"

    sticker_set = await api.ok("getStickerSet", name=name)
    assert sticker_set["title"] == "Mochi" and len(sticker_set["stickers"]) == 2
    first = sticker_set["stickers"][0]
    assert (first["width"], first["height"]) == (512, 384)
    assert first["is_animated"] is False and first["is_video"] is False
    assert first["type"] == "regular" and first["set_name"] == name and first["emoji"] == "🐱"

    sent = await api.ok("sendSticker", chat_id=alice.id, sticker=first["file_id"])
    assert sent["sticker"]["file_id"] == first["file_id"]
    assert [s["name"] for s in await tg.sticker_sets()] == [name]
    assert await tg.download(first["file_id"]) == sticker


# --------------------------------------------------------------------------- world


async def test_group_privacy_mode_and_blocked_user(api: Api, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    group = await tg.create_group("Cats", [alice.id], supergroup=True)
    assert str(group["id"]).startswith("-100") and group["type"] == "supergroup"
    in_group = alice.in_chat(group["id"])
    await tg.set_privacy_mode(True)
    chatter = await in_group.say("just chatting")
    command = await in_group.say("/learn@oneword_test_bot mochi")
    assert not chatter.delivered and command.delivered
    updates = await api.ok("getUpdates")
    assert [u["message"]["text"] for u in updates] == ["/learn@oneword_test_bot mochi"]
    assert updates[0]["message"]["chat"] == {"id": group["id"], "type": "supergroup",
                                             "title": "Cats"}

    await tg.block_bot(alice.id)
    status, body = await api.json("sendMessage", chat_id=alice.id, text="hi")
    assert (status, body["description"]) == (403, "Forbidden: bot was blocked by the user")
    with pytest.raises(ControlError) as err:
        await tg.send_text(group["id"], 5555, "who am I")
    assert err.value.status == 400


async def test_server_in_thread_with_sync_client() -> None:
    server = BotApiServer()
    thread = server.run_in_thread()
    try:
        with urllib.request.urlopen(f"{server.base_url}{server.token}/getMe", timeout=5) as resp:
            assert json.load(resp)["result"]["username"] == "oneword_test_bot"
        assert thread.call(lambda: server.world.bot.id) == 123456789
    finally:
        thread.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.base_url}{server.token}/getMe", timeout=1)


# --------------------------------------------------------------------------- real PTB bot


def build_echo_bot(server: BotApiServer, rate_limiter: AIORateLimiter | None = None) -> Application:
    """A tiny bot: /start with a button, /learn <word>, text echo, photo echo, button edit."""
    builder = (
        ApplicationBuilder().token(server.token)
        .base_url(server.base_url).base_file_url(server.base_file_url)
    )
    if rate_limiter is not None:
        builder = builder.rate_limiter(rate_limiter).concurrent_updates(True)
    app = builder.build()

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        button = InlineKeyboardButton("Ping", callback_data="ping")
        await update.effective_message.reply_text(
            "Welcome!", reply_markup=InlineKeyboardMarkup([[button]])
        )

    async def learn(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_chat.send_action("typing")
        await update.effective_message.reply_text(f"learning {' '.join(context.args or [])}")

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text(update.effective_message.text, do_quote=True)

    async def photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        context.bot_data.setdefault("photos", []).append(
            (message.message_id, message.media_group_id)
        )
        data = await (await message.photo[-1].get_file()).download_as_bytearray()
        await message.reply_photo(bytes(data), caption=f"{len(data)} bytes")

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        await query.answer("pong")
        await query.edit_message_text(f"pressed {query.data}")

    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("learn", learn))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    app.add_handler(MessageHandler(filters.PHOTO, photo))
    app.add_handler(CallbackQueryHandler(pressed))
    return app


@contextlib.asynccontextmanager
async def polling(app: Application) -> AsyncIterator[Application]:
    await app.initialize()
    await app.start()
    await app.updater.start_polling(timeout=5)
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


async def test_ptb_echo_commands_and_photo(server: BotApiServer, tg: ControlClient) -> None:
    alice = await tg.user("Alice", username="alice")
    async with polling(build_echo_bot(server)):
        await alice.say("/start")
        welcome = await alice.wait_reply(contains="Welcome", buttons=True)
        assert welcome.buttons == [{"text": "Ping", "callback_data": "ping"}]

        await alice.say("/learn@oneword_test_bot mochi")
        assert (await alice.wait_reply(contains="learning")).text == "learning mochi"
        assert (await tg.chat_actions(alice.id))[-1]["action"] == "typing"

        await alice.say("hello there")
        echoed = await alice.wait_reply()
        assert echoed.text == "hello there" and echoed.reply_to_message_id == alice.last_sent

        original = image_bytes(800, 600)
        await alice.send_photo(original)
        reply = await alice.wait_reply(photo=True)
        assert reply.text == f"{len(original)} bytes"
        assert await tg.download(reply.photo_file_id) == original
        assert dimensions(await tg.download(reply.photo[0]["file_id"])) == (90, 68)

        history = await alice.history()
        assert [m.from_bot for m in history] == [False, True] * 4


async def test_ptb_album_and_button_round_trip(server: BotApiServer, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    app = build_echo_bot(server)
    async with polling(app):
        album = await alice.send_album([image_bytes(64, 48), image_bytes(48, 64),
                                        image_bytes(50, 50)], caption="my cat")
        group_ids = {m.media_group_id for m in album}
        assert len(group_ids) == 1 and None not in group_ids
        assert [m.text for m in album] == ["my cat", None, None]
        await tg.wait_for(alice.id, lambda _: len(app.bot_data.get("photos", [])) == 3,
                          after=album[-1].message_id, photo=True)
        seen = app.bot_data["photos"]
        assert [mid for mid, _ in seen] == [m.message_id for m in album]
        assert {gid for _, gid in seen} == group_ids

        await alice.say("/start")
        welcome = await alice.wait_reply(contains="Welcome")
        query = await alice.press(welcome, "ping")
        answer = await tg.wait_for_answer(query["id"])
        assert answer["text"] == "pong" and answer["data"] == "ping"
        edited = await tg.wait_for(alice.id, contains="pressed ping")
        assert edited.message_id == welcome.message_id
        assert edited.texts == ["Welcome!", "pressed ping"] and edited.buttons == []


async def test_ptb_rate_limiter_survives_429_burst(server: BotApiServer,
                                                   tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    app = build_echo_bot(server, AIORateLimiter(max_retries=5))
    async with polling(app):
        await tg.force_429(3, retry_after=1, methods=["sendMessage"])
        for i in range(5):
            await alice.say(f"msg {i}")
        for i in range(5):
            await tg.wait_for(alice.id, contains=f"msg {i}", timeout=15)
    stats = await tg.stats()
    assert stats["served_429"] == 3
    bot_texts = sorted(m.text for m in await tg.bot_messages(alice.id))
    assert bot_texts == [f"msg {i}" for i in range(5)]  # each delivered exactly once


async def test_ptb_bot_methods_parse(server: BotApiServer, tg: ControlClient) -> None:
    """Objects returned by the server must de-serialise into PTB's classes."""
    from telegram import Bot, BotCommand, InputMediaPhoto, InputSticker
    from telegram.error import BadRequest

    alice = await tg.user("Alice")
    group = await tg.create_group("Cats", [alice.id], admin_ids=[alice.id])
    async with Bot(server.token, base_url=server.base_url,
                   base_file_url=server.base_file_url) as bot:
        assert await bot.set_my_commands([BotCommand("learn", "Learn a new word")])
        assert [c.command for c in await bot.get_my_commands()] == ["learn"]
        assert (await tg.commands())[0]["commands"][0]["command"] == "learn"

        chat = await bot.get_chat(group["id"])
        assert chat.title == "Cats" and chat.type == "supergroup"
        member = await bot.get_chat_member(group["id"], alice.id)
        assert member.status == "creator"

        album = await bot.send_media_group(alice.id, [
            InputMediaPhoto(image_bytes(64, 64), caption="first"),
            InputMediaPhoto(image_bytes(32, 64)),
        ])
        assert len({m.media_group_id for m in album}) == 1 and album[0].caption == "first"
        assert album[1].photo[-1].width == 32

        gif = io.BytesIO()
        Image.new("P", (20, 10)).save(gif, "GIF")
        doc = await bot.send_document(alice.id, gif.getvalue(), filename="a.gif")
        assert doc.animation.width == 20 and doc.document.file_name == "a.gif"

        edited = await bot.edit_message_media(
            InputMediaPhoto(image_bytes(100, 50), caption="v2"), alice.id, album[0].message_id
        )
        assert edited.caption == "v2" and edited.photo[-1].width == 100
        with pytest.raises(BadRequest) as err:
            await bot.edit_message_caption(alice.id, album[0].message_id, caption="v2")
        assert err.value.message.startswith("Message is not modified")

        sticker = await bot.send_sticker(alice.id, image_bytes(256, 256, "WEBP"))
        assert sticker.sticker.width == 256 and sticker.sticker.is_animated is False

        uploaded = await bot.upload_sticker_file(alice.id, image_bytes(512, 512, "PNG"),
                                                 "static")
        name = "cats_by_oneword_test_bot"
        assert await bot.create_new_sticker_set(
            alice.id, name, "Cats", [InputSticker(uploaded.file_id, ["🐱"], "static")]
        )
        assert await bot.add_sticker_to_set(
            alice.id, name, InputSticker(image_bytes(512, 200, "PNG"), ["😸"], "static")
        )
        sticker_set = await bot.get_sticker_set(name)
        assert [s.emoji for s in sticker_set.stickers] == ["🐱", "😸"]
        with pytest.raises(BadRequest, match="Invalid sticker set name is specified"):
            await bot.create_new_sticker_set(
                alice.id, "cats", "Cats", [InputSticker(uploaded.file_id, ["🐱"], "static")]
            )
        file = await bot.get_file(sticker_set.stickers[1].file_id)
        assert dimensions(bytes(await file.download_as_bytearray())) == (512, 200)


async def test_standalone_module_serves_and_stops_on_sigterm() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "botapi", "--port", "0", "--username", "other_bot"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        first = await asyncio.to_thread(proc.stdout.readline)
        assert first.startswith("Bot API server on http://127.0.0.1:")
        url = first.split()[-1]
        async with ControlClient(url) as client:
            assert (await client.state())["bot"]["username"] == "other_bot"
        proc.terminate()
        out, _ = await asyncio.to_thread(proc.communicate, timeout=10)
        assert proc.returncode == 0 and "Bot API server stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
