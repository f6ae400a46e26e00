"""Who and where: every update's sender and chat are recorded in the storage first.

Runs in handler group -1, before any other handler, so the user and chat rows that jobs,
concepts and counters refer to always exist and names stay fresh. Also follows a group's
upgrade to a supergroup (a new chat id), so its words and pending results move along.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from storage import StorageError

from .services import get_services

log = logging.getLogger(__name__)

SUPPORTED_CHATS = (ChatType.PRIVATE, ChatType.GROUP, ChatType.SUPERGROUP)


async def remember(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Upsert the update's user and chat (channels and anonymous senders are skipped)."""
    store = get_services(context).store
    user, chat, message = update.effective_user, update.effective_chat, update.effective_message
    if user is not None and not user.is_bot:
        await store.users.upsert(user.id, user.full_name, user.username)
    if chat is not None and chat.type in SUPPORTED_CHATS:
        title = chat.title or chat.full_name or ""
        await store.chats.upsert(chat.id, chat.type, title)
    if message is not None and message.migrate_to_chat_id and chat is not None:
        try:
            await store.chats.migrate_to_supergroup(chat.id, message.migrate_to_chat_id,
                                                    chat.title or "")
        except StorageError as exc:
            log.warning("chat %d -> %d migration not recorded: %s", chat.id,
                        message.migrate_to_chat_id, exc)
