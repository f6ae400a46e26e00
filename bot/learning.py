"""/learn: name a new word, collect 3-5 photos of it, queue the learning job.

Flow::

    /learn mochi [object|person|style]   -> name and kind checked, free in this chat's scope
    photos (album, one by one, or files) -> collected in a LearnSession (bot/services.py)
    album complete (quiet for album_wait s) with >= 3, the 5th single photo, or /done
                                         -> photos downloaded, checked, stored; learn job queued

An album arrives as separate updates sharing a ``media_group_id``: every photo (re)schedules a
JobQueue job that fires once the album has been quiet for ``Tuning.album_wait`` seconds, so
the whole album is answered once. Photos sent one by one are acknowledged one by one.

The worker creates the concept when learning succeeds: owner = the user, scope = this chat (a
private chat makes a personal word, a group a word of the group).
"""

from __future__ import annotations

import contextlib
import logging

from telegram import ForceReply, Message, ReplyParameters, Update
from telegram.constants import ChatAction, ChatType
from telegram.ext import ContextTypes

from storage import ConceptKind, InvalidConceptName, concept_name_key, normalize_concept_name
from worker import protocol

from . import photos, queueing, texts
from .services import LearnSession, Services, StoredPhoto, get_services

log = logging.getLogger(__name__)

KINDS = tuple(kind.value for kind in ConceptKind)


def _album_job_name(chat_id: int, user_id: int) -> str:
    return f"album:{chat_id}:{user_id}"


async def name_problem(services: Services, chat_id: int, name: str, group: bool) -> str | None:
    """Why ``name`` cannot be learned in this chat now (taken, or being learned), or None."""
    store = services.store
    if await store.concepts.name_taken(name, chat_id=chat_id):
        return texts.name_taken(name, group)
    key = concept_name_key(name)
    for job in await store.jobs.list_active(chat_id=chat_id, kinds=[protocol.LEARN]):
        other = str(job.payload.get("name", ""))
        try:
            if concept_name_key(other) == key:
                return texts.already_learning(name)
        except InvalidConceptName:
            continue
    return None


async def learn_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/learn <name> [kind]``: validate, then ask for photos."""
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    if message is None or chat is None or user is None:
        return
    services = get_services(context)
    args = context.args or []
    if not args or len(args) > 2:
        await message.reply_text(texts.LEARN_USAGE)
        return
    try:
        name = normalize_concept_name(args[0])
    except InvalidConceptName as exc:
        await message.reply_text(texts.bad_name(str(exc)))
        return
    if not name.isascii():  # the engine makes a token of it: a-z, 0-9, '_' and '-' only
        await message.reply_text(texts.bad_name(texts.LATIN_ONLY))
        return
    kind = args[1].lower() if len(args) == 2 else ConceptKind.OBJECT.value
    if kind not in KINDS:
        await message.reply_text(texts.bad_kind(args[1]))
        return
    group = chat.type != ChatType.PRIVATE
    refusal = (await name_problem(services, chat.id, name, group)
               or await queueing.check_concepts(services, user.id)
               or await queueing.check_active(services, user.id))
    if refusal:
        await message.reply_text(refusal)
        return
    _drop_album_timer(context, chat.id, user.id)
    services.sessions.put(LearnSession(chat.id, user.id, name, kind, message.message_id,
                                       services.sessions.now()))
    markup = ForceReply(selective=True, input_field_placeholder="Send photos") if group else None
    await message.reply_text(texts.send_photos(name, kind, group), reply_markup=markup)


async def take_photo(update: Update, context: ContextTypes.DEFAULT_TYPE,
                     session: LearnSession) -> None:
    """A picture (or something else) sent while ``session`` collects photos."""
    message = update.effective_message
    assert message is not None
    services = get_services(context)
    try:
        ref = photos.image_in(message)
    except photos.PhotoRefused as exc:
        await message.reply_text(str(exc))
        return
    if ref is None:
        await message.reply_text(texts.SESSION_NEEDS_PHOTOS)
        return
    session.photos.append(ref)
    if message.media_group_id:
        session.album_count += 1
        _drop_album_timer(context, session.chat_id, session.user_id)
        assert context.job_queue is not None
        context.job_queue.run_once(
            album_complete, services.tuning.album_wait,
            data=(session.chat_id, session.user_id),
            name=_album_job_name(session.chat_id, session.user_id))
        return
    if session.count >= texts.MAX_PHOTOS:
        services.sessions.pop(session.chat_id, session.user_id)
        context.application.create_task(finish(services, context, session), update=update)
        return
    await message.reply_text(texts.photos_so_far(session.count))


async def album_complete(context: ContextTypes.DEFAULT_TYPE) -> None:
    """JobQueue callback: an album went quiet; learn if there are enough photos."""
    assert context.job is not None
    chat_id, user_id = context.job.data  # type: ignore[misc]
    services = get_services(context)
    session = services.sessions.get(chat_id, user_id)
    if session is None:
        return
    if session.count >= texts.MIN_PHOTOS:
        services.sessions.pop(chat_id, user_id)
        await finish(services, context, session)
        return
    await context.bot.send_message(chat_id, texts.photos_so_far(session.count))


async def done_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/done``: learn from the photos collected so far (at least three)."""
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    if message is None or chat is None or user is None:
        return
    services = get_services(context)
    session = services.sessions.get(chat.id, user.id)
    if session is None:
        await message.reply_text(texts.DONE_WITHOUT_SESSION)
        return
    if session.count < texts.MIN_PHOTOS:
        await message.reply_text(texts.photos_so_far(session.count))
        return
    services.sessions.pop(chat.id, user.id)
    _drop_album_timer(context, chat.id, user.id)
    context.application.create_task(finish(services, context, session), update=update)


def cancel_session(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int) -> bool:
    """Drop the user's photo collection in this chat; True if there was one."""
    _drop_album_timer(context, chat_id, user_id)
    return get_services(context).sessions.pop(chat_id, user_id) is not None


def _drop_album_timer(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int) -> None:
    if context.job_queue is None:
        return
    for job in context.job_queue.get_jobs_by_name(_album_job_name(chat_id, user_id)):
        job.schedule_removal()


async def finish(services: Services, context: ContextTypes.DEFAULT_TYPE,
                 session: LearnSession) -> None:
    """Download and check the session's photos, then queue the learning job.

    Photos that fail the checks are skipped; with fewer than three left, the session is put
    back (keeping the good photos) and the user is asked for more. Runs outside the update
    that triggered it (a task or a JobQueue job), so it reports its own failures.
    """
    try:
        await _finish(services, context, session)
    except Exception:
        log.exception("learning %r in chat %d could not be queued", session.name,
                      session.chat_id)
        with contextlib.suppress(Exception):
            await _say(context, session, texts.SOMETHING_WENT_WRONG)


async def _finish(services: Services, context: ContextTypes.DEFAULT_TYPE,
                  session: LearnSession) -> None:
    bot = context.bot
    chat_id = session.chat_id
    notes: list[str] = []
    if session.count > texts.MAX_PHOTOS:
        notes.append(texts.using_first(session.count))
    await _typing(context, chat_id)
    stored: list[StoredPhoto] = list(session.stored)
    problems: list[str] = []
    for ref in session.photos:
        if len(stored) >= texts.MAX_PHOTOS:
            break
        try:
            stored.append(await photos.fetch(bot, services.store, ref, user_id=session.user_id,
                                             chat_id=chat_id, reuse=False))
        except photos.PhotoRefused as exc:
            problems.append(str(exc))
    if problems:
        notes.append(texts.some_photos_refused(problems, len(stored)))
    if len(stored) < texts.MIN_PHOTOS:
        session.photos, session.stored = [], stored
        session.started = services.sessions.now()
        services.sessions.put(session)
        await _say(context, session, "\n".join(notes))
        return
    group = chat_id < 0
    refusal = (await name_problem(services, chat_id, session.name, group)
               or await queueing.check_active(services, session.user_id))
    if refusal:
        await services.store.media.delete([photo.media_id for photo in stored])
        await _say(context, session, "\n".join([*notes, refusal]))
        return
    if notes:
        await _say(context, session, "\n".join(notes))
    payload = protocol.LearnPayload(name=session.name, kind=session.kind,
                                    photos=[photo.path for photo in stored],
                                    scope_chat_id=chat_id,
                                    media_ids=[photo.media_id for photo in stored])
    job = await queueing.submit(services, bot, kind=protocol.LEARN, chat_id=chat_id,
                                user_id=session.user_id, payload=protocol.to_json(payload),
                                reply_to=session.request_message_id)
    await services.store.media.link_job([photo.media_id for photo in stored], job.id)
    log.info("learn job %d queued: %d photos", job.id, len(stored))


async def _say(context: ContextTypes.DEFAULT_TYPE, session: LearnSession, text: str) -> Message:
    reply = ReplyParameters(session.request_message_id, allow_sending_without_reply=True)
    return await context.bot.send_message(session.chat_id, text, reply_parameters=reply)


async def _typing(context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> None:
    try:
        await context.bot.send_chat_action(chat_id, ChatAction.UPLOAD_PHOTO)
    except Exception as exc:  # a chat action is a nicety; never fail the request for it
        log.debug("chat action failed: %s", exc)
