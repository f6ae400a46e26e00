"""The same small bot written with two Telegram libraries we did not write: aiogram 3 and
pyTelegramBotAPI (its asyncio ``AsyncTeleBot``), for checking that our Bot API server
speaks Telegram's protocol to any client, not only to python-telegram-bot.

What both bots do:

- ``/start`` in a private chat: ``<b>Hello</b>, <i>{first name}</i>!`` with two inline buttons
  (``choice:yes`` / ``choice:no``);
- a pressed button: the callback is answered ``You chose {x}`` and the message is edited to
  ``Chosen: <b>{x}</b>`` without buttons;
- ``/count`` (also ``/count@bot`` in groups): ``count: {n}``, counted per chat;
- any other text: echoed back inside ``<code>``;
- a photo: the largest size is downloaded, mirrored and sent back as a photo captioned
  ``mirrored <b>{w}x{h}</b>``;
- a document: downloaded and sent back as ``echo-{name}`` captioned ``{size} bytes``;
- a sticker: sent back by its ``file_id``;
- ``/album``: an album of two new photos (red, blue), the first captioned ``<i>album</i>``.

Each peer runs in polling mode (``async with peer.polling()``) or behind a webhook served
on 127.0.0.1 (``async with peer.webhook()``); aiogram answers webhook updates with the
method in the HTTP response (Telegram's "reply to webhook").
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import io
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from PIL import Image, ImageOps

from botapi import BotApiServer

WEBHOOK_SECRET = "peer-secret"
POLL_TIMEOUT_S = 1


def mirrored(data: bytes) -> tuple[bytes, tuple[int, int]]:
    """The image mirrored left-right as PNG, and its size."""
    with Image.open(io.BytesIO(data)) as image:
        flipped = ImageOps.mirror(image.convert("RGB"))
    out = io.BytesIO()
    flipped.save(out, "PNG")
    return out.getvalue(), flipped.size


def greeting(first_name: str) -> str:
    return f"<b>Hello</b>, <i>{html.escape(first_name)}</i>!"


def echo(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


CHOICES = ("yes", "no")
ALBUM_COLOURS = ((220, 20, 20), (20, 20, 220))


def album_photos() -> list[bytes]:
    """Two small PNGs in the album's colours."""
    photos = []
    for colour in ALBUM_COLOURS:
        out = io.BytesIO()
        Image.new("RGB", (80, 60), colour).save(out, "PNG")
        photos.append(out.getvalue())
    return photos


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free local port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class AiogramPeer:
    """The bot written with aiogram 3 (handlers return methods, aiogram's idiom)."""

    name = "aiogram"

    def __init__(self, server: BotApiServer) -> None:
        self.server = server

    def _build(self) -> tuple[Any, Any]:
        from aiogram import Bot, Dispatcher, F
        from aiogram.client.default import DefaultBotProperties
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer
        from aiogram.filters import Command, CommandStart
        from aiogram.types import (
            BufferedInputFile,
            CallbackQuery,
            InlineKeyboardButton,
            InlineKeyboardMarkup,
            InputMediaPhoto,
            Message,
        )

        session = AiohttpSession(api=TelegramAPIServer.from_base(self.server.url))
        bot = Bot(self.server.token, session=session,
                  default=DefaultBotProperties(parse_mode="HTML"))
        dp = Dispatcher()
        counts: Counter[int] = Counter()
        keyboard = InlineKeyboardMarkup(inline_keyboard=[[
            InlineKeyboardButton(text=c.title(), callback_data=f"choice:{c}") for c in CHOICES
        ]])

        @dp.message(CommandStart(), F.chat.type == "private")
        async def start(message: Message) -> Any:
            return message.answer(greeting(message.from_user.first_name), reply_markup=keyboard)

        @dp.callback_query(F.data.startswith("choice:"))
        async def choice(query: CallbackQuery) -> Any:
            picked = query.data.split(":", 1)[1]
            await query.answer(f"You chose {picked}")
            return query.message.edit_text(f"Chosen: <b>{picked}</b>")

        @dp.message(Command("count"))
        async def count(message: Message) -> Any:
            counts[message.chat.id] += 1
            return message.reply(f"count: {counts[message.chat.id]}")

        @dp.message(Command("album"))
        async def album(message: Message) -> Any:
            return message.answer_media_group([
                InputMediaPhoto(media=BufferedInputFile(data, f"{i}.png"),
                                caption="<i>album</i>" if i == 0 else None)
                for i, data in enumerate(album_photos())
            ])

        @dp.message(F.sticker)
        async def sticker(message: Message) -> Any:
            return message.answer_sticker(message.sticker.file_id)

        @dp.message(F.photo)
        async def photo(message: Message) -> Any:
            data = await bot.download(message.photo[-1].file_id)
            flipped, (width, height) = mirrored(data.read())
            return message.reply_photo(BufferedInputFile(flipped, "mirrored.png"),
                                       caption=f"mirrored <b>{width}x{height}</b>")

        @dp.message(F.document)
        async def document(message: Message) -> Any:
            data = (await bot.download(message.document.file_id)).read()
            name = f"echo-{message.document.file_name}"
            return message.reply_document(BufferedInputFile(data, name),
                                          caption=f"{len(data)} bytes")

        @dp.message(F.text)
        async def text(message: Message) -> Any:
            return message.answer(echo(message.text))

        return bot, dp

    @contextlib.asynccontextmanager
    async def polling(self) -> AsyncIterator[None]:
        bot, dp = self._build()
        task = asyncio.create_task(dp.start_polling(
            bot, polling_timeout=POLL_TIMEOUT_S, handle_signals=False, close_bot_session=True,
        ))
        try:
            yield
        finally:
            with contextlib.suppress(RuntimeError):  # polling already ended
                await asyncio.wait_for(dp.stop_polling(), 10)
            await asyncio.wait_for(task, 10)

    @contextlib.asynccontextmanager
    async def webhook(self) -> AsyncIterator[None]:
        from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application

        bot, dp = self._build()
        app = web.Application()
        SimpleRequestHandler(dispatcher=dp, bot=bot, handle_in_background=False,
                             secret_token=WEBHOOK_SECRET).register(app, path="/hook")
        setup_application(app, dp, bot=bot)
        async with serve(app) as url:
            await bot.set_webhook(f"{url}/hook", secret_token=WEBHOOK_SECRET)
            try:
                yield
            finally:
                await bot.delete_webhook()
        await bot.session.close()


class TelebotPeer:
    """The bot written with pyTelegramBotAPI's ``AsyncTeleBot`` (it sends GET requests with
    form bodies for getUpdates and getFile)."""

    name = "pytelegrambotapi"

    def __init__(self, server: BotApiServer) -> None:
        self.server = server

    def _build(self) -> Any:
        from telebot import asyncio_helper, types
        from telebot.async_telebot import AsyncTeleBot

        # The library keeps its endpoints in module globals.
        asyncio_helper.API_URL = f"{self.server.url}/bot{{0}}/{{1}}"
        asyncio_helper.FILE_URL = f"{self.server.url}/file/bot{{0}}/{{1}}"
        bot = AsyncTeleBot(self.server.token, parse_mode="HTML")
        counts: Counter[int] = Counter()
        keyboard = types.InlineKeyboardMarkup()
        keyboard.row(*[types.InlineKeyboardButton(c.title(), callback_data=f"choice:{c}")
                       for c in CHOICES])

        async def download(file_id: str) -> bytes:
            file = await bot.get_file(file_id)
            return await bot.download_file(file.file_path)

        @bot.message_handler(commands=["start"], chat_types=["private"])
        async def start(message: Any) -> None:
            await bot.send_message(message.chat.id, greeting(message.from_user.first_name),
                                   reply_markup=keyboard)

        @bot.callback_query_handler(func=lambda q: (q.data or "").startswith("choice:"))
        async def choice(query: Any) -> None:
            picked = query.data.split(":", 1)[1]
            await bot.answer_callback_query(query.id, f"You chose {picked}")
            await bot.edit_message_text(f"Chosen: <b>{picked}</b>", query.message.chat.id,
                                        query.message.message_id)

        @bot.message_handler(commands=["count"])
        async def count(message: Any) -> None:
            counts[message.chat.id] += 1
            await bot.reply_to(message, f"count: {counts[message.chat.id]}")

        @bot.message_handler(commands=["album"])
        async def album(message: Any) -> None:
            await bot.send_media_group(message.chat.id, [
                types.InputMediaPhoto(types.InputFile(io.BytesIO(data), f"{i}.png"),
                                      caption="<i>album</i>" if i == 0 else None,
                                      parse_mode="HTML")
                for i, data in enumerate(album_photos())
            ])

        @bot.message_handler(content_types=["sticker"])
        async def sticker(message: Any) -> None:
            await bot.send_sticker(message.chat.id, message.sticker.file_id)

        @bot.message_handler(content_types=["photo"])
        async def photo(message: Any) -> None:
            flipped, (width, height) = mirrored(await download(message.photo[-1].file_id))
            await bot.send_photo(message.chat.id, flipped,
                                 caption=f"mirrored <b>{width}x{height}</b>",
                                 reply_to_message_id=message.message_id)

        @bot.message_handler(content_types=["document"])
        async def document(message: Any) -> None:
            data = await download(message.document.file_id)
            name = f"echo-{message.document.file_name}"
            await bot.send_document(message.chat.id, types.InputFile(io.BytesIO(data), name),
                                    caption=f"{len(data)} bytes",
                                    reply_to_message_id=message.message_id)

        @bot.message_handler(content_types=["text"])
        async def text(message: Any) -> None:
            await bot.send_message(message.chat.id, echo(message.text))

        return bot

    @contextlib.asynccontextmanager
    async def polling(self) -> AsyncIterator[None]:
        bot = self._build()
        task = asyncio.create_task(bot.polling(non_stop=True, timeout=POLL_TIMEOUT_S,
                                               request_timeout=POLL_TIMEOUT_S + 5))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)

    @contextlib.asynccontextmanager
    async def webhook(self) -> AsyncIterator[None]:
        from telebot import asyncio_helper, types

        bot = self._build()

        async def hook(request: web.Request) -> web.Response:
            if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != WEBHOOK_SECRET:
                return web.Response(status=403)
            await bot.process_new_updates([types.Update.de_json(await request.text())])
            return web.Response()

        app = web.Application()
        app.router.add_post("/hook", hook)
        async with serve(app) as url:
            await bot.set_webhook(f"{url}/hook", secret_token=WEBHOOK_SECRET)
            try:
                yield
            finally:
                await bot.delete_webhook()
        if asyncio_helper.session_manager.session is not None:
            await bot.close_session()


PEERS = {peer.name: peer for peer in (AiogramPeer, TelebotPeer)}
