"""Messages that are not commands: where each one goes.

In order:

1. private chat, text or caption reading as an edit ("add mochi ...") -> :mod:`bot.editing`
   (the picture is the message's own, or the one it replies to);
2. private chat, anything else -> a short hint. Groups: silence (people talk among
   themselves; with privacy mode on the bot mostly doesn't see these anyway).

Slash commands in captions (``/replace ...`` on a photo) are routed by :func:`caption_command`,
since python-telegram-bot's CommandHandler only reads message text.
"""

from __future__ import annotations

from telegram import Chat, Message, Update, User
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from oneword.grammar import VERBS, CommandError, command_addressee, parse_edit

from . import editing, photos, sessions, stickers, texts
from .senders import from_a_sender


@from_a_sender()
async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE,
                     message: Message, chat: Chat, user: User) -> None:
    """Route an ordinary (non-command) message."""
    private = chat.type == ChatType.PRIVATE
    text = message.text or message.caption
    with_media = photos.has_media(message)
    if private and text:
        source = message if with_media else message.reply_to_message
        routed = await _try_edit(update, context, text, source)
        if routed:
            return
    if not private:
        return
    if with_media:
        try:
            photos.image_in(message)
        except photos.PhotoRefused as exc:
            await message.reply_text(str(exc))
            return
        await message.reply_text(texts.PHOTO_WITHOUT_COMMAND)
        return
    await message.reply_text(texts.DIDNT_UNDERSTAND)


async def _try_edit(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str,
                    source: Message | None) -> bool:
    """Start an edit in the background if ``text`` is an edit command (True if it was)."""
    message = update.effective_message
    assert message is not None
    try:
        command = parse_edit(text)
    except CommandError as exc:
        await message.reply_text(texts.edit_usage(str(exc)))
        return True
    if command is None:
        return False
    context.application.create_task(
        editing.request_edit(update, context, command, source),
        update=update)
    return True


async def caption_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A picture whose caption is a command: ``/replace@bot dog with mochi``, ``/sticker``."""
    message = update.effective_message
    if message is None:
        return
    found = command_addressee(message.caption)
    if found is None:
        return
    verb, addressee = found
    if addressee is not None and addressee.lower() != (context.bot.username or "").lower():
        return  # meant for another bot
    if verb in VERBS:
        await editing.edit_command(update, context)
    elif verb == "sticker":
        await stickers.sticker_command(update, context)


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A slash command nobody handles: explain in private, stay quiet in groups."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None or chat.type != ChatType.PRIVATE:
        return
    session = sessions.current(context, chat.id) if update.effective_user else None
    await message.reply_text(texts.SESSION_NEEDS_PHOTOS if session else texts.UNKNOWN_COMMAND)
