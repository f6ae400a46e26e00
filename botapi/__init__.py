"""A local Telegram Bot API server for end-to-end tests and the playground.

``BotApiServer`` speaks the real Bot API over HTTP (enough for unmodified bots written with
python-telegram-bot, aiogram 3 or pyTelegramBotAPI) and exposes ``/control/...`` routes
through which ``ControlClient`` plays users and inspects what the bot did. Among them,
``ControlClient.force_429`` scripts flood control per method and per chat
(``force_429(3, retry_after=20, methods=["deleteMessage"], chat_ids=[chat])``), and
``ControlClient.stats`` lists the 429s served and any retry made before ``retry_after``
ran out.
"""

from .client import ControlClient, ControlError
from .persona import Persona
from .records import MessageRecord
from .server import DEFAULT_TOKEN, DEFAULT_USERNAME, BotApiServer
from .thread import ServerThread

__all__ = [
    "DEFAULT_TOKEN",
    "DEFAULT_USERNAME",
    "BotApiServer",
    "ControlClient",
    "ControlError",
    "MessageRecord",
    "Persona",
    "ServerThread",
]
