"""/learn: name a new word, collect 3-5 photos of it, queue the learning job.

A python-telegram-bot ConversationHandler, persisted in our database (:mod:`bot.persistence`)
so a restart loses neither the conversation nor the photos collected::

    /learn mochi [object|person|style]   -> name and kind checked, free in this chat's scope;
                                            COLLECTING
    each photo (album, one by one, file) -> downloaded, checked and stored as it arrives; a file
                                            that cannot be used is refused at once, saying why;
                                            its caption, if any, describes what else it shows
    album complete (quiet for album_wait s) with >= 3, the 5th single photo, or /done
                                         -> learn job queued; the conversation ends
    /cancel                              -> the photos are dropped; the conversation ends

The session (name, kind, the stored photos) lives in the user's ``user_data``
(:mod:`bot.sessions`). An album arrives as separate updates sharing a ``media_group_id``:
every photo (re)schedules a JobQueue job that fires once the album has been quiet for
``Tuning.album_wait`` seconds, so the whole album is answered once. That job runs outside the
conversation, so it only closes the session; the conversation notices at the user's next
message in this chat and hands that message on as if no /learn were open.

The worker creates the concept when learning succeeds: owner = the user, scope = this chat (a
private chat makes a personal word, a group a word of the group).
"""

from __future__ import annotations

import contextlib
import logging
import time

from telegram import Chat, ForceReply, Message, ReplyParameters, Update, User
from telegram.constants import ChatAction, ChatType
from telegram.ext import (
    BaseHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from oneword import jobs
from oneword.grammar import CommandError, parse_edit
from storage import (
    ConceptKind,
    InvalidConceptName,
    LimitReached,
    concept_name_key,
    normalize_concept_name,
)

from . import commands, inbox, photos, queueing, sessions, texts
from .persistence import save_now
from .senders import from_a_sender
from .services import AnyApplication, LearnSession, Services, get_services

log = logging.getLogger(__name__)

KINDS = tuple(kind.value for kind in ConceptKind)
CONVERSATION = "learn"
COLLECTING = 1
END = ConversationHandler.END
DESCRIPTION_CHARS = 200  # of a learning photo's caption; a description, not a story


class _EditRequest(filters.MessageFilter):
    """A private message whose text or caption reads as an edit ("add mochi"): those go to
    the editor even while photos are being collected."""

    def filter(self, message: Message) -> bool:
        text = message.text or message.caption
        if message.chat.type != ChatType.PRIVATE or not text:
            return False
        try:
            return parse_edit(text) is not None
        except CommandError:
            return True


def conversation(caption_command: filters.BaseFilter) -> ConversationHandler:
    """The /learn conversation; ``caption_command`` matches pictures captioned with a slash
    command, which are left to their own handler."""
    new = filters.UpdateType.MESSAGE  # edited messages are not re-run
    media = (filters.PHOTO | filters.Document.ALL | filters.ANIMATION | filters.Sticker.ALL
             | filters.VIDEO | filters.VIDEO_NOTE | filters.AUDIO | filters.VOICE)
    not_edit = ~_EditRequest() & ~caption_command
    collecting: list[BaseHandler] = [
        MessageHandler(new & media & not_edit, photo_arrived),
        CommandHandler("done", done_command, filters=new),
        CommandHandler("cancel", cancel_command, filters=new),
        MessageHandler(new & filters.ChatType.PRIVATE & filters.TEXT & ~filters.COMMAND
                       & not_edit, text_arrived),
    ]
    return ConversationHandler(
        entry_points=[CommandHandler("learn", learn_command, filters=new)],
        states={COLLECTING: collecting}, fallbacks=[], allow_reentry=True,
        name=CONVERSATION, persistent=True)


def _album_job_name(chat_id: int, user_id: int) -> str:
    return f"album:{chat_id}:{user_id}"


async def name_problem(services: Services, chat_id: int, name: str, group: bool) -> str | None:
    """Why ``name`` cannot be learned in this chat now (taken, or being learned), or None."""
    store = services.store
    if await store.concepts.name_taken(name, chat_id=chat_id):
        return texts.name_taken(name, group)
    key = concept_name_key(name)
    for job in await store.jobs.list_active(chat_id=chat_id, kinds=[jobs.JobKind.LEARN]):
        try:
            if concept_name_key(jobs.from_json(jobs.LearnPayload, job.payload).name) == key:
                return texts.already_learning(name)
        except (InvalidConceptName, TypeError):
            continue
    return None


@from_a_sender()
async def learn_command(update: Update, context: ContextTypes.DEFAULT_TYPE,
                        message: Message, chat: Chat, user: User) -> int | None:
    """``/learn <name> [kind]``: validate, then ask for photos."""
    services = get_services(context)
    open_session = sessions.current(context, chat.id)
    if open_session is not None and open_session.request_message_id == message.message_id:
        return COLLECTING  # this /learn handled again after a crash: keep what it collected
    args = context.args or []
    if not args or len(args) > 2:
        await message.reply_text(texts.LEARN_USAGE)
        return None
    try:
        name = normalize_concept_name(args[0])
    except InvalidConceptName as exc:
        await message.reply_text(texts.bad_name(str(exc)))
        return None
    kind = args[1].lower() if len(args) == 2 else ConceptKind.OBJECT.value
    if kind not in KINDS:
        await message.reply_text(texts.bad_kind(args[1]))
        return None
    group = chat.type != ChatType.PRIVATE
    refusal = (await name_problem(services, chat.id, name, group)
               or await queueing.check_concepts(services, user.id)
               or await queueing.check_active(services, user.id))
    if refusal:
        await message.reply_text(refusal)
        return None
    _drop_album_timer(context, chat.id, user.id)
    earlier = sessions.drop(context, chat.id)
    if earlier is not None:
        await services.store.media.delete([photo.media_id for photo in earlier.stored])
    sessions.keep(context, LearnSession(chat.id, user.id, name, kind, message.message_id,
                                        time.time()))
    await save_now(context, user.id, CONVERSATION, (chat.id, user.id), COLLECTING)
    markup = ForceReply(selective=True, input_field_placeholder="Send photos") if group else None
    await message.reply_text(texts.send_photos(name, kind, group), reply_markup=markup)
    return COLLECTING


async def photo_arrived(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    """A picture (or another file) while collecting: check and store it now, or say at once
    why it cannot be used."""
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    assert message is not None and chat is not None and user is not None
    session = sessions.current(context, chat.id)
    if session is None:  # the album went to learning meanwhile, or the session expired
        await inbox.on_message(update, context)
        return END
    services = get_services(context)
    try:
        ref = photos.image_in(message)
        if ref is None:
            raise photos.PhotoRefused(texts.NOT_AN_IMAGE)
        if any(photo.key == ref.file_unique_id for photo in session.stored):
            return None  # counted already: its update handled again after a crash (or resent)
        stored = await photos.fetch(context.bot, services.store, ref, user_id=user.id,
                                    chat_id=chat.id, reuse=False)
    except photos.PhotoRefused as exc:
        await message.reply_text(texts.photo_refused(str(exc), session.count))
        return None
    session.stored.append(stored)
    session.descriptions += [""] * (session.count - 1 - len(session.descriptions))
    session.descriptions.append(photo_description(message.caption))
    if message.media_group_id:
        session.album_count += 1
        sessions.keep(context, session)
        await save_now(context, user.id)
        _drop_album_timer(context, chat.id, user.id)
        assert context.job_queue is not None
        context.job_queue.run_once(album_complete, services.tuning.album_wait,
                                   chat_id=chat.id, user_id=user.id,
                                   name=_album_job_name(chat.id, user.id))
        return None
    if session.count >= texts.MAX_PHOTOS:
        context.application.create_task(finish(services, context, session), update=update)
        return END
    sessions.keep(context, session)
    await save_now(context, user.id)
    await message.reply_text(texts.photos_so_far(session.count))
    return None


def photo_description(caption: str | None) -> str:
    """A learning photo's caption as a description of what else it shows ("on a beach"),
    one line of at most DESCRIPTION_CHARS characters; "" when there is none."""
    return " ".join((caption or "").split())[:DESCRIPTION_CHARS]


async def text_arrived(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    """Private text that is no command and no edit while collecting: a reminder."""
    message, chat = update.effective_message, update.effective_chat
    assert message is not None and chat is not None
    if sessions.current(context, chat.id) is None:
        await inbox.on_message(update, context)
        return END
    await message.reply_text(texts.SESSION_NEEDS_PHOTOS)
    return None


async def album_complete(context: ContextTypes.DEFAULT_TYPE) -> None:
    """JobQueue callback: an album went quiet; learn if there are enough photos."""
    assert context.job is not None and context.job.chat_id is not None
    chat_id = context.job.chat_id
    session = sessions.current(context, chat_id)
    if session is None:
        return
    if session.count >= texts.MIN_PHOTOS:
        await finish(get_services(context), context, session)
        return
    await context.bot.send_message(chat_id, texts.photos_so_far(session.count))


@from_a_sender(skipped=END)
async def done_command(update: Update, context: ContextTypes.DEFAULT_TYPE,
                       message: Message, chat: Chat, user: User) -> int | None:
    """``/done``: learn from the photos collected so far (at least three)."""
    session = sessions.current(context, chat.id)
    if session is None:
        await message.reply_text(texts.DONE_WITHOUT_SESSION)
        return END
    if session.count < texts.MIN_PHOTOS:
        await message.reply_text(texts.photos_so_far(session.count))
        return None
    _drop_album_timer(context, chat.id, user.id)
    context.application.create_task(finish(get_services(context), context, session),
                                    update=update)
    return END


@from_a_sender(skipped=END)
async def cancel_command(update: Update, context: ContextTypes.DEFAULT_TYPE,
                         message: Message, chat: Chat, user: User) -> int:
    """``/cancel`` while collecting: drop the photos (without a session: cancel a job)."""
    _drop_album_timer(context, chat.id, user.id)
    await commands.cancel_command(update, context)
    await save_now(context, user.id)
    return END


def resume_albums(application: AnyApplication) -> None:
    """After a restart: answer the albums whose quiet-time timer died with the last process
    (their photos were kept; the timer was not)."""
    assert application.job_queue is not None
    wait = get_services(application).tuning.album_wait
    for user_id, data in application.user_data.items():
        for chat, session in (data.get(sessions.LEARN_KEY) or {}).items():
            if session.get("album_count"):
                application.job_queue.run_once(album_complete, wait, chat_id=int(chat),
                                               user_id=user_id,
                                               name=_album_job_name(int(chat), user_id))


def _drop_album_timer(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int) -> None:
    if context.job_queue is None:
        return
    for job in context.job_queue.get_jobs_by_name(_album_job_name(chat_id, user_id)):
        job.schedule_removal()


async def finish(services: Services, context: ContextTypes.DEFAULT_TYPE,
                 session: LearnSession) -> None:
    """Queue the learning job from the session's stored photos, then close the session.
    Runs outside the update that triggered it (a task or a JobQueue job), so it reports its
    own failures. The session is closed only after the job is queued: a bot killed in between
    handles the request again after its restart, and finds the job queued by its request key
    instead of losing the photos or queueing them twice."""
    try:
        await _finish(services, context, session)
    except Exception:
        log.exception("learning %r in chat %d could not be queued", session.name,
                      session.chat_id)
        with contextlib.suppress(Exception):
            await _say(context, session, texts.SOMETHING_WENT_WRONG)
    current = sessions.current(context, session.chat_id)
    if current is not None and current.request_message_id == session.request_message_id:
        sessions.drop(context, session.chat_id)
    await save_now(context, session.user_id)


async def _finish(services: Services, context: ContextTypes.DEFAULT_TYPE,
                  session: LearnSession) -> None:
    chat_id = session.chat_id
    key = queueing.request_key(jobs.JobKind.LEARN, chat_id, session.request_message_id)
    if await services.store.jobs.find_request(key) is not None:
        return  # queued before a crash; this is the request handled again
    notes: list[str] = []
    stored, extra = session.stored[:texts.MAX_PHOTOS], session.stored[texts.MAX_PHOTOS:]
    if extra:
        notes.append(texts.using_first(session.count))
        await services.store.media.delete([photo.media_id for photo in extra])
    await _typing(context, chat_id)
    group = chat_id < 0
    refusal = (await name_problem(services, chat_id, session.name, group)
               or await queueing.check_active(services, session.user_id))
    if refusal:
        await services.store.media.delete([photo.media_id for photo in stored])
        await _say(context, session, "\n".join([*notes, refusal]))
        return
    if notes:
        await _say(context, session, "\n".join(notes))
    payload = jobs.LearnPayload(name=session.name, kind=session.kind,
                                photos=[photo.path for photo in stored],
                                scope_chat_id=chat_id,
                                media_ids=[photo.media_id for photo in stored],
                                descriptions=[session.description_of(i)
                                              for i in range(len(stored))])
    try:
        job = await queueing.submit(services, context.bot, kind=jobs.JobKind.LEARN,
                                    chat_id=chat_id, user_id=session.user_id,
                                    payload=jobs.to_json(payload),
                                    reply_to=session.request_message_id, key=key)
    except LimitReached as exc:
        await services.store.media.delete([photo.media_id for photo in stored])
        await _say(context, session, "\n".join([*notes, queueing.limit_refusal(exc)]))
        return
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
