"""Building and running the bot's python-telegram-bot Application.

``run(settings)`` is the entry point (``oneword bot`` / ``python -m bot``): long polling, or a
webhook when ``settings.webhook_url`` is set. ``running(settings)`` is the same bot as an async
context manager, for running it inside an existing event loop (tests, a playground).

The Application gets:

* the Bot API URLs from settings (``base_url``/``base_file_url``: a local Bot API server);
* our :class:`~bot.ratelimit.ChatRateLimiter` (Telegram's ~30 msg/s overall and 20/min per
  group; a 429 is waited out and retried by its chat alone) and an update processor that
  handles different chats side by side (:mod:`bot.chatorder`);
* a JobQueue for album gathering and the delivery loop (:mod:`bot.delivery`);
* a persistence in our database (:mod:`bot.persistence`) for the /learn conversation;
* the handlers (:func:`add_handlers`) and the error handler (:mod:`bot.errors`);
* an update queue that stores each update before Telegram is told it arrived, and marks it
  handled once its handlers finished (:mod:`bot.intake`);
* start-up work (:func:`on_startup`): open the storage, set the command menus, start delivery,
  queue again the updates the last run left unhandled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from telegram import BotCommand, BotCommandScopeAllGroupChats, BotCommandScopeAllPrivateChats
from telegram import Update as TgUpdate
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    Defaults,
    MessageHandler,
    TypeHandler,
    filters,
)

from oneword.grammar import VERBS
from oneword.settings import Settings
from storage import DataGone

from . import (
    access,
    buttons,
    commands,
    editing,
    errors,
    inbox,
    learning,
    packs,
    probes,
    seen,
    stickers,
    texts,
)
from .chatorder import ChatOrderedProcessor
from .datawatch import stop_for_lost_data, stopped_for_lost_data, watch_data
from .delivery import Delivery
from .intake import InboxApplication, StoredUpdateQueue, replay_unhandled
from .logs import install_redaction, quiet_noisy_loggers
from .persistence import DatabasePersistence
from .ratelimit import ChatRateLimiter
from .services import BOT_DATA_KEY, Services, Tuning, get_services
from .startup import check_token
from .webhook import webhook_secret

log = logging.getLogger(__name__)

ALLOWED_UPDATES = [TgUpdate.MESSAGE, TgUpdate.CALLBACK_QUERY]
RATE_LIMIT_RETRIES = 5
DELIVERY_KEY = "oneword.delivery"
_CAPTION_COMMAND = rf"(?i)^\s*/({'|'.join((*VERBS, 'sticker'))})(@\w+)?(\s|$)"


def build_application(settings: Settings, tuning: Tuning | None = None) -> Application:
    """The configured Application (not started). Raises ValueError without a token.

    Also masks the token in every log record from now on and quiets httpx (see bot.logs).
    """
    if not settings.token:
        raise ValueError("no bot token: set TELEGRAM_TOKEN (or token in the settings file)")
    install_redaction(settings.token)
    quiet_noisy_loggers()
    services = Services(settings, tuning or Tuning())
    application = (
        ApplicationBuilder()
        .application_class(InboxApplication)
        .update_queue(StoredUpdateQueue(services))
        .token(settings.token)
        .base_url(settings.base_url)
        .base_file_url(settings.base_file_url)
        .read_timeout(services.tuning.reply_timeout)
        .write_timeout(services.tuning.reply_timeout)
        .rate_limiter(ChatRateLimiter(max_retries=RATE_LIMIT_RETRIES))
        .concurrent_updates(ChatOrderedProcessor())
        .defaults(Defaults(do_quote=True, allow_sending_without_reply=True))
        .persistence(DatabasePersistence(services))
        .post_init(on_startup)
        .post_stop(on_stop)
        .post_shutdown(on_shutdown)
        .build()
    )
    application.bot_data[BOT_DATA_KEY] = services
    add_handlers(application)
    return application


def add_handlers(application: Application) -> None:
    """Register every handler, in the order they are tried."""
    new = filters.UpdateType.MESSAGE  # edited messages are not re-run
    application.add_handler(TypeHandler(TgUpdate, access.refuse_strangers), group=-2)
    application.add_handler(TypeHandler(TgUpdate, seen.remember), group=-1)
    on = application.add_handler
    on(learning.conversation(filters.CaptionRegex(_CAPTION_COMMAND)))
    on(CommandHandler("start", commands.start, filters=new))
    on(CommandHandler("help", commands.help_command, filters=new))
    on(CommandHandler("concepts", commands.concepts_command, filters=new))
    on(CommandHandler("forget", commands.forget_command, filters=new))
    on(CommandHandler("share", commands.share_command, filters=new))
    on(CommandHandler("cancel", commands.cancel_command, filters=new))
    on(CommandHandler("status", commands.status_command, filters=new))
    on(CommandHandler("done", learning.done_command, filters=new))
    on(CommandHandler(list(VERBS), editing.edit_command, filters=new, block=False))
    on(CommandHandler("sticker", stickers.sticker_command, filters=new, block=False))
    on(CommandHandler("pack", packs.pack_command, filters=new, block=False))
    on(MessageHandler(new & filters.CaptionRegex(_CAPTION_COMMAND), inbox.caption_command,
                      block=False))
    on(MessageHandler(new & filters.COMMAND, inbox.unknown_command))
    on(MessageHandler(new & ~filters.StatusUpdate.ALL, inbox.on_message))
    on(CallbackQueryHandler(editing.why_button, pattern=buttons.pattern(buttons.WHY),
                            block=False))
    on(CallbackQueryHandler(editing.again_button, pattern=buttons.pattern(buttons.AGAIN),
                            block=False))
    on(CallbackQueryHandler(stickers.sticker_button, pattern=buttons.pattern(buttons.STICKER),
                            block=False))
    on(CallbackQueryHandler(stickers.add_to_set_button,
                            pattern=buttons.pattern(buttons.ADD_TO_SET), block=False))
    on(CallbackQueryHandler(packs.redo_button, pattern=packs.REDO_PATTERN, block=False))
    on(CallbackQueryHandler(_stale_button))
    application.add_error_handler(errors.on_error)


async def _stale_button(update: TgUpdate, context: Any) -> None:
    if update.callback_query is not None:
        await update.callback_query.answer(texts.STALE_BUTTON)


async def on_startup(application: Application) -> None:
    """Open the storage, publish the command menus, start the delivery loop, queue the
    updates left unhandled by the last run (before polling starts)."""
    services = get_services(application)
    await services.open()
    bot = application.bot
    await bot.set_my_commands([BotCommand(c, d) for c, d in texts.COMMANDS_PRIVATE],
                              scope=BotCommandScopeAllPrivateChats())
    await bot.set_my_commands([BotCommand(c, d) for c, d in texts.COMMANDS_GROUP],
                              scope=BotCommandScopeAllGroupChats())
    delivery = Delivery(services)
    application.bot_data[DELIVERY_KEY] = delivery
    assert application.job_queue is not None, "install python-telegram-bot[job-queue]"
    delivery.start(application.job_queue)
    watch_data(application)
    learning.resume_albums(application)
    await replay_unhandled(application)
    await probes.start_health(application)
    log.info("bot @%s ready; data in %s", bot.username, services.settings.data_path)


async def on_stop(application: Application) -> None:
    """Stop scheduling delivery passes (the JobQueue is stopping); let deliveries in flight
    end."""
    delivery = application.bot_data.get(DELIVERY_KEY)
    if delivery is not None:
        await delivery.stop()


async def on_shutdown(application: Application) -> None:
    """Stop the health server, close the storage."""
    await probes.stop_health(application)
    await get_services(application).close()


@contextlib.asynccontextmanager
async def running(settings: Settings, tuning: Tuning | None = None,
                  *, poll_timeout: float = 10.0) -> AsyncIterator[Application]:
    """The bot long-polling inside the current event loop until the block exits.

    Same start-up and shutdown steps, in the same order, as :meth:`Application.run_polling`.
    """
    application = build_application(settings, tuning)
    await application.initialize()
    try:
        await on_startup(application)
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0.0, timeout=int(poll_timeout),
                                                allowed_updates=ALLOWED_UPDATES)
        await application.start()
        try:
            yield application
        finally:
            if application.updater.running:
                await application.updater.stop()
            if application.running:
                await application.stop()
            await on_stop(application)
    finally:
        await application.shutdown()
        await on_shutdown(application)


def run(settings: Settings) -> int:
    """Run the bot until SIGINT/SIGTERM: a webhook if ``settings.webhook_url`` is set, else
    long polling. Blocks; owns the event loop. Returns the exit code: 0, or 1 when the bot
    stopped because its data directory vanished (see :mod:`bot.datawatch`).

    Raises :class:`~bot.startup.StartupError` (one line, no token) before starting when the
    token is missing or rejected, or the Bot API cannot be reached.
    """
    install_redaction(settings.token)
    check_token(settings)
    secret = webhook_secret(settings) if settings.webhook_url else None  # see bot.webhook
    application = build_application(settings)
    try:
        if settings.webhook_url:
            path = urlsplit(settings.webhook_url).path.lstrip("/")
            log.info("webhook mode: listening on %s:%d, updates without the secret refused",
                     settings.webhook_listen, settings.webhook_port)
            application.run_webhook(
                listen=settings.webhook_listen, port=settings.webhook_port, url_path=path,
                webhook_url=settings.webhook_url, secret_token=secret,
                allowed_updates=ALLOWED_UPDATES)
        else:
            log.info("polling mode")
            application.run_polling(allowed_updates=ALLOWED_UPDATES)
    except DataGone as exc:  # met while shutting down (e.g. the last persistence write)
        stop_for_lost_data(application, exc)
    if stopped_for_lost_data(application):
        # A shutdown step that met the missing data skips the storage's close; its
        # connection's thread would keep the process from ending.
        with contextlib.suppress(Exception):
            asyncio.run(get_services(application).close())
        return 1
    return 0
