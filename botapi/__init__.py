"""A local Telegram Bot API server for end-to-end tests and the playground.

``BotApiServer`` speaks the real Bot API over HTTP (enough for an unmodified
python-telegram-bot ``Application``) and exposes ``/control/...`` routes through which
``ControlClient`` plays users and inspects what the bot did.
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
