"""Checking the bot token with the Bot API before the bot starts.

python-telegram-bot learns that the token is missing, rejected or that the Bot API cannot be
reached only while it starts, and says so in a traceback of a hundred lines or more (the
rejected token's one quotes the token). The service asks the Bot API who it is (``getMe``)
once first, so that each of these ends the start with one sentence for the operator.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from telegram import Bot
from telegram.error import InvalidToken, NetworkError, TelegramError

from oneword.settings import Settings

from .logs import redact


class StartupError(Exception):
    """The bot cannot start; the message (one line, no secrets) says why and what to do."""


def check_token(settings: Settings) -> str:
    """The bot's username, after the Bot API at ``settings.base_url`` accepted the token.

    Raises :class:`StartupError` when there is no token, when the server rejects it, or when
    the server cannot be reached. The token never appears in the message.
    """
    if not settings.token:
        raise StartupError("no bot token: set TELEGRAM_TOKEN (or token in the settings file)")
    try:
        return asyncio.run(_get_me(settings))
    except InvalidToken:
        raise StartupError(
            f"the Bot API at {_host(settings.base_url)} rejected the bot token: check "
            "TELEGRAM_TOKEN (the token @BotFather gave the bot)") from None
    except NetworkError as exc:  # TimedOut included
        reason = redact(str(exc), [settings.token])
        raise StartupError(
            f"cannot reach the Bot API at {_host(settings.base_url)} ({reason}): check the "
            "network, or ONEWORD_BASE_URL for a local Bot API server") from None
    except TelegramError as exc:
        reason = redact(str(exc), [settings.token])
        raise StartupError(f"the Bot API at {_host(settings.base_url)} refused to start the "
                           f"bot: {reason}") from None


async def _get_me(settings: Settings) -> str:
    bot = Bot(settings.token, base_url=settings.base_url,
              base_file_url=settings.base_file_url)
    async with bot:  # initialize() asks getMe; leaving closes the HTTP client
        return bot.username


def _host(url: str) -> str:
    """``host[:port]`` of a Bot API URL, for the message (its path ends with the token)."""
    return urlsplit(url).netloc or url
