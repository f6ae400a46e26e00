"""The message, chat and sender a handler answers, taken from the update in one place.

Most handlers answer a message someone sent in a chat. An update may lack one of the three (a
channel post has no sender, a poll answer no message): such an update has nothing to answer,
and the handler is skipped.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from telegram import Chat, Message, Update, User
from telegram.ext import ContextTypes

P = ParamSpec("P")
R = TypeVar("R")

Context = ContextTypes.DEFAULT_TYPE
Answering = Callable[Concatenate[Update, Context, Message, Chat, User, P], Awaitable[R]]
Handling = Callable[Concatenate[Update, Context, P], Awaitable[R | Any]]


def from_a_sender(skipped: Any = None) -> Callable[[Answering[P, R]], Handling[P, R]]:
    """Decorator: call the handler as ``handler(update, context, message, chat, user, ...)``
    (any further arguments follow), or return ``skipped`` without calling it when the update
    has no message, chat or sender (e.g. ``ConversationHandler.END`` to close a conversation).
    """

    def decorate(handler: Answering[P, R]) -> Handling[P, R]:
        @functools.wraps(handler)
        async def handle(update: Update, context: Context, *args: P.args,
                         **kwargs: P.kwargs) -> R | Any:
            message, chat = update.effective_message, update.effective_chat
            user = update.effective_user
            if message is None or chat is None or user is None:
                return skipped
            return await handler(update, context, message, chat, user, *args, **kwargs)

        return handle

    return decorate
