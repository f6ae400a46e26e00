"""The everyday commands: /start, /help, /concepts, /forget, /share, /cancel, /status.

Concept look-ups always go through the storage's privacy rules with the real sender and chat
of the update, so nobody can list, use, share or delete somebody else's private word.
"""

from __future__ import annotations

import logging

from telegram import Chat, Message, Update, User
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from storage import (
    ConceptExists,
    ConceptNotFound,
    InvalidArgument,
    InvalidConceptName,
    JobNotActive,
    NotAllowed,
    StoredConcept,
    UserNotFound,
)

from . import queueing, sessions, texts
from .editing import unknown_concept
from .senders import from_a_sender
from .services import get_services

log = logging.getLogger(__name__)

ADMINS = (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/start``: who I am and how to begin."""
    message, user = update.effective_message, update.effective_user
    if message is None:
        return
    name = user.first_name if user else "there"
    await message.reply_text(texts.START.format(name=name))


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/help``: every command with examples."""
    if update.effective_message is not None:
        await update.effective_message.reply_text(texts.HELP)


@from_a_sender()
async def concepts_command(update: Update, context: ContextTypes.DEFAULT_TYPE,
                           message: Message, chat: Chat, user: User) -> None:
    """``/concepts``: the words this user may use in this chat, and whose they are."""
    store = get_services(context).store
    group = chat.type != ChatType.PRIVATE
    rows: list[tuple[StoredConcept, str]] = []
    for concept in await store.concepts.list_visible(user_id=user.id, chat_id=chat.id):
        if concept.is_personal and concept.owner_id == user.id:
            shared_here = group and chat.id in await store.concepts.shared_into(concept.id)
            whose = texts.WHOSE_MINE_SHARED if shared_here else texts.WHOSE_MINE
        elif not concept.is_personal:
            whose = texts.WHOSE_GROUP
        else:
            try:
                owner = (await store.users.get(concept.owner_id)).name or "someone"
            except UserNotFound:
                owner = "someone"
            whose = texts.whose_shared(owner)
        rows.append((concept, whose))
    await message.reply_text(texts.concept_list(rows, group))


@from_a_sender()
async def forget_command(update: Update, context: ContextTypes.DEFAULT_TYPE,
                         message: Message, chat: Chat, user: User) -> None:
    """``/forget <name>``: delete a word and its files (its teacher, or a group admin for a
    word of the group)."""
    services = get_services(context)
    if len(context.args or []) != 1:
        await message.reply_text(texts.FORGET_USAGE)
        return
    name = (context.args or [""])[0]
    try:
        concept = await services.store.concepts.get_visible(name, user_id=user.id,
                                                            chat_id=chat.id)
    except InvalidConceptName as exc:
        await message.reply_text(texts.bad_name(str(exc)))
        return
    if concept is None:
        await message.reply_text(await unknown_concept(services, name, user.id, chat.id))
        return
    force = False
    if concept.owner_id != user.id:
        if concept.is_personal or concept.scope_chat_id != chat.id:
            await message.reply_text(texts.not_yours_to_forget(concept.name))
            return
        force = await _is_admin(context, chat.id, user.id)
        if not force:
            await message.reply_text(texts.not_yours_to_forget(concept.name))
            return
    try:
        await services.store.concepts.delete(concept.id, user_id=user.id, force=force)
    except ConceptNotFound:
        pass  # deleted meanwhile: the outcome the user wanted
    except NotAllowed:
        await message.reply_text(texts.not_yours_to_forget(concept.name))
        return
    await message.reply_text(texts.forgotten(concept.name))


@from_a_sender()
async def share_command(update: Update, context: ContextTypes.DEFAULT_TYPE,
                        message: Message, chat: Chat, user: User) -> None:
    """``/share <name>`` in a group: let everyone in it use the sender's private word."""
    if chat.type == ChatType.PRIVATE:
        await message.reply_text(texts.SHARE_IN_GROUP)
        return
    if len(context.args or []) != 1:
        await message.reply_text(texts.SHARE_USAGE)
        return
    name = (context.args or [""])[0]
    store = get_services(context).store
    try:
        concept = await store.concepts.get_visible(name, user_id=user.id, chat_id=chat.id)
    except InvalidConceptName as exc:
        await message.reply_text(texts.bad_name(str(exc)))
        return
    if concept is None or not concept.is_personal or concept.owner_id != user.id:
        await message.reply_text(texts.no_own_concept(name))
        return
    try:
        await store.concepts.share(concept.id, user_id=user.id, chat_id=chat.id)
    except (ConceptExists, NotAllowed, InvalidArgument) as exc:
        await message.reply_text(texts.share_refused(str(exc)))
        return
    await message.reply_text(texts.shared(concept.name))


@from_a_sender()
async def cancel_command(update: Update, context: ContextTypes.DEFAULT_TYPE,
                         message: Message, chat: Chat, user: User) -> None:
    """``/cancel``: stop collecting photos, or cancel the sender's newest job in this chat."""
    services = get_services(context)
    session = sessions.drop(context, chat.id)
    if session is not None:
        await services.store.media.delete([photo.media_id for photo in session.stored])
        await message.reply_text(texts.LEARN_CANCELLED)
        return
    jobs = await services.store.jobs.list_active(user_id=user.id, chat_id=chat.id)
    if not jobs:
        await message.reply_text(texts.NOTHING_TO_CANCEL)
        return
    job = jobs[-1]
    title = texts.job_title(job)
    try:
        job = await services.store.jobs.cancel(job.id, user_id=user.id)
    except JobNotActive:
        await message.reply_text(texts.already_finished(title))
        return
    if job.status_message_id is not None:
        services.throttle.forget(chat.id, job.status_message_id)
        try:
            await context.bot.edit_message_text(texts.job_status(job, None), chat.id,
                                                job.status_message_id)
        except TelegramError as exc:
            log.info("job %d: cancelled status not shown: %s", job.id, exc)
    await message.reply_text(texts.cancelled(title))


@from_a_sender()
async def status_command(update: Update, context: ContextTypes.DEFAULT_TYPE,
                         message: Message, chat: Chat, user: User) -> None:
    """``/status``: the sender's waiting and running jobs (in a group: those of this group)."""
    services = get_services(context)
    chat_filter = None if chat.type == ChatType.PRIVATE else chat.id
    lines: list[str] = []
    session = sessions.current(context, chat.id)
    if session is not None:
        lines.append(f"Collecting photos for \"{session.name}\": {session.count} so far.")
    for job in await services.store.jobs.list_active(user_id=user.id, chat_id=chat_filter):
        lines.append(texts.job_status(job, await queueing.position(services, job)))
    await message.reply_text(texts.status_list(lines) if lines else texts.NO_JOBS)


async def _is_admin(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int) -> bool:
    try:
        member = await context.bot.get_chat_member(chat_id, user_id)
    except TelegramError as exc:
        log.info("admin check failed in chat %d: %s", chat_id, exc)
        return False
    return member.status in ADMINS
