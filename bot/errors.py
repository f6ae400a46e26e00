"""The last line of defence: an error handler that logs (without the token) and apologises.

Every exception a handler or job raises ends here; the process keeps running. The user who
triggered it gets a short apology (or a "busy, try again" when the database was locked),
never the exception text, which may contain internals.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import Forbidden, TelegramError
from telegram.ext import ContextTypes

from storage import DatabaseBusy, DataGone

from . import texts
from .datawatch import stop_for_lost_data

log = logging.getLogger(__name__)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error with where it happened; tell the chat something went wrong."""
    error = context.error
    where = _describe(update)
    if isinstance(error, DataGone):  # nothing can be stored any more: the bot stops
        stop_for_lost_data(context.application, error)
    if isinstance(error, Forbidden):
        log.info("%s: not allowed to answer: %s", where, error.message)
        return
    log.error("%s: %s", where, type(error).__name__, exc_info=error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    text = texts.BUSY if isinstance(error, DatabaseBusy) else texts.SOMETHING_WENT_WRONG
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(text, show_alert=True)
        elif update.effective_message is not None:
            await update.effective_message.reply_text(text)
    except TelegramError as exc:
        log.info("%s: apology not sent: %s", where, exc)


def _describe(update: object) -> str:
    if isinstance(update, Update):
        chat = update.effective_chat.id if update.effective_chat else "-"
        user = update.effective_user.id if update.effective_user else "-"
        return f"update {update.update_id} (chat {chat}, user {user})"
    return "background job" if update is None else type(update).__name__
