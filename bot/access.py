"""Who may use the bot: the allowlist of users and chats in the settings.

With ``allowed_users`` and ``allowed_chats`` both empty everyone may. Otherwise an update
passes when its sender or its chat is listed (a listed group lets all its members in); any
other gets a polite refusal and goes no further: no user or chat of it is recorded and no
job queued.
"""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop, ContextTypes

from . import texts
from .services import get_services


def admits(update: Update, users: frozenset[int], chats: frozenset[int]) -> bool:
    """Whether the allowlist lets this update in."""
    if not users and not chats:
        return True
    user, chat = update.effective_user, update.effective_chat
    return (user is not None and user.id in users) or (chat is not None and chat.id in chats)


async def refuse_strangers(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stop an update the allowlist does not admit, answering it politely: a button press with
    an alert, a private message or a command in a group with a reply (other group chatter is
    not answered, so a group the bot was added to is not flooded)."""
    if not isinstance(update, Update):
        return
    settings = get_services(context.application).settings
    if admits(update, settings.allowed_user_ids, settings.allowed_chat_ids):
        return
    user = update.effective_user
    refusal = texts.not_allowed(user.id if user is not None else None)
    if update.callback_query is not None:
        await update.callback_query.answer(refusal, show_alert=True)
    elif (message := update.effective_message) is not None:
        said = message.text or message.caption or ""
        if message.chat.type == ChatType.PRIVATE or said.startswith("/"):
            await message.reply_text(refusal)
    raise ApplicationHandlerStop
