"""Edit requests: "add mochi", "replace dog with mochi", "restyle as mochi", "remove the man".

Where they come from:

* private chats: a photo's caption, or a text message replying to a photo (plain words), routed
  here by :mod:`bot.inbox`;
* any chat: the commands ``/add``, ``/replace``, ``/restyle``, ``/remove`` (``@botname``
  allowed) as a reply to a photo, or as the caption of a photo. Groups need commands because
  privacy mode hides ordinary messages from bots.

A request is checked before anything is downloaded: the command reads, its concept name is one
this user may use in this chat (storage privacy rules), and the user is under the job limit.
Then the photo is downloaded and stored and an ``edit`` job is queued with an
:class:`oneword.jobs.EditPayload`. The buttons under a result are answered here too: "Why?"
(the attention maps) and "Another take" (the same edit, a new seed).
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from telegram import CallbackQuery, Chat, Message, ReplyParameters, Update, User
from telegram.ext import ContextTypes

from oneword import jobs, names
from oneword.grammar import CommandError, EditCommand, parse_edit
from storage import InvalidConceptName, Job

from . import buttons, photos, queueing, texts
from .senders import from_a_sender
from .services import Services, get_services

log = logging.getLogger(__name__)

MAX_SEED = 2**31 - 1


async def edit_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/add``, ``/replace``, ``/restyle``, ``/remove`` as a reply to a photo, or as the
    caption of a photo."""
    message = update.effective_message
    if message is None:
        return
    try:
        command = parse_edit(message.text or message.caption or "")
    except CommandError as exc:
        await message.reply_text(texts.edit_usage(str(exc)))
        return
    if command is None:  # cannot happen for these commands; nothing sensible to do
        await message.reply_text(texts.DIDNT_UNDERSTAND)
        return
    source = message if photos.has_media(message) else message.reply_to_message
    await request_edit(update, context, command, source)


@from_a_sender()
async def request_edit(update: Update, context: ContextTypes.DEFAULT_TYPE,
                       message: Message, chat: Chat, user: User,
                       command: EditCommand, source: Message | None) -> None:
    """Check, download and queue one edit of the picture in ``source``."""
    services = get_services(context)
    ref = await photos.image_or_reply(message, source, texts.REPLY_TO_A_PHOTO)
    if ref is None:
        return
    concept_ids: list[int] = []
    if command.concept is not None:
        concept = await services.store.concepts.get_visible(command.concept, user_id=user.id,
                                                            chat_id=chat.id)
        if concept is None:
            await message.reply_text(await unknown_concept(services, command.concept,
                                                           user.id, chat.id))
            return
        concept_ids.append(concept.id)
    if command.subject is not None:  # "replace mochi with rex": the old word may be one too
        try:
            old = await services.store.concepts.get_visible(command.subject, user_id=user.id,
                                                            chat_id=chat.id)
        except InvalidConceptName:
            old = None
        if old is not None and old.id not in concept_ids:
            concept_ids.append(old.id)
    await queueing.submit_photo_job(
        services, context.bot, message, ref, kind=jobs.JobKind.EDIT, user_id=user.id,
        chat_id=chat.id, payload_for=lambda stored: jobs.EditPayload(
            photo=stored.path, photo_key=ref.file_unique_id, command=command,
            concept_ids=concept_ids, seed=0, as_file=ref.as_file))


async def unknown_concept(services: Services, name: str, user_id: int, chat_id: int) -> str:
    """The refusal for a name this user cannot use here, listing the names they can."""
    visible = await services.store.concepts.list_visible(user_id=user_id, chat_id=chat_id)
    return texts.unknown_concept(name, [c.name for c in visible])


@buttons.job_button(jobs.JobKind.EDIT)
async def why_button(query: CallbackQuery, context: ContextTypes.DEFAULT_TYPE,
                     services: Services, job: Job) -> None:
    """"Why?": send the attention maps of an edit as a reply to its result."""
    assert query.message is not None
    found = await buttons.stored_result(query, services, job, jobs.EditResult,
                                        lambda result: result.maps, texts.MAPS_GONE)
    if found is None:
        return
    result, data = found
    await query.answer()
    caption = texts.WHY_CAPTION.format(source=names.readable_prompt(result.source_prompt),
                                       target=names.readable_prompt(result.target_prompt))
    await context.bot.send_photo(
        query.message.chat.id, data, caption=caption[:1000],
        reply_parameters=ReplyParameters(query.message.message_id,
                                         allow_sending_without_reply=True))


@buttons.job_button(jobs.JobKind.EDIT)
async def again_button(query: CallbackQuery, context: ContextTypes.DEFAULT_TYPE,
                       services: Services, job: Job) -> None:
    """"Another take": queue the same edit with a new seed, for whoever pressed it."""
    assert query.message is not None
    chat_id, presser = query.message.chat.id, query.from_user.id
    payload = jobs.from_json(jobs.EditPayload, job.payload)
    if not await asyncio.to_thread(photos.still_stored, services.store, payload.photo):
        await query.answer(texts.PHOTO_GONE, show_alert=True)
        return
    visible = {c.id for c in await services.store.concepts.list_visible(user_id=presser,
                                                                        chat_id=chat_id)}
    if not set(payload.concept_ids) <= visible:
        await query.answer(texts.CONCEPT_GONE, show_alert=True)
        return
    payload.seed = secrets.randbelow(MAX_SEED) + 1
    await queueing.submit_for_button(services, context.bot, query, kind=jobs.JobKind.EDIT,
                                     payload=jobs.to_json(payload), done=texts.ANOTHER_TAKE)
