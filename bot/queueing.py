"""Putting work into the job queue: per-user limits, the job row, and its status message.

Limits come from settings: ``max_concurrent_jobs`` (queued or running, per user),
``edits_per_day`` (edits and stickers, counted separately, per UTC day) and ``max_concepts``.
Each check returns the refusal to show, or None when the request may go ahead.

The checks before a photo is downloaded are a quick first answer; the limits that count are
checked again, in the transaction that queues the job (``enqueue``'s ``max_active`` and
``daily``), so requests sent at once cannot slip past them together. A flood of requests over a
limit is refused once per burst (:mod:`bot.bursts`), never once each.

Every job carries the key of the request that asked for it (:func:`request_key`): a request
handled again after a crash (:mod:`bot.intake`) finds its job instead of queueing another.

After a job is queued the bot answers with ONE status message (queue position, later progress,
see :mod:`bot.delivery`). The job id stays in ``Services.announcing`` until that message is
linked to the job, so the delivery loop never answers a job before its status message exists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from telegram import Bot, CallbackQuery, Message, ReplyParameters
from telegram.error import TelegramError

from oneword import jobs
from storage import DailyLimitReached, Job, LimitReached

from . import photos, texts
from .photos import ImageRef, StoredPhoto
from .services import Services

log = logging.getLogger(__name__)

async def check_active(services: Services, user_id: int) -> str | None:
    """Refusal if the user already has the most jobs queued or running."""
    limit = services.settings.max_concurrent_jobs
    if await services.store.jobs.count_active(user_id) >= limit:
        return texts.too_many_jobs(limit)
    return None


async def check_concepts(services: Services, user_id: int) -> str | None:
    """Refusal if the user has (or is learning) as many concepts as allowed."""
    limit = services.settings.max_concepts
    store = services.store
    owned = await store.concepts.count_owned(user_id)
    learning = await store.jobs.count_active(user_id, [jobs.JobKind.LEARN])
    if owned + learning >= limit:
        return texts.concept_limit(limit)
    return None


def request_key(kind: str, chat_id: int, message_id: int | str) -> str:
    """The key of the request for a ``kind`` job made by message ``message_id`` (or by a
    button press, ``"button-<query id>"``) in ``chat_id``."""
    return f"{kind}:{chat_id}:{message_id}"


def limit_refusal(exc: LimitReached) -> str:
    """What to tell a user whose job ``enqueue`` refused for one of their limits."""
    if isinstance(exc, DailyLimitReached):
        return texts.daily_limit(exc.limit)
    return texts.too_many_jobs(exc.limit)


async def refuse_once_per_burst(services: Services, message: Message, user_id: int,
                                text: str) -> None:
    """Reply ``text`` unless this user got the same refusal in this chat moments ago (a
    flood)."""
    if services.refusals.first_of_burst((message.chat_id, user_id, text)):
        await message.reply_text(text)
    else:
        log.info("chat %d, user %d: refusal kept quiet (one per burst)", message.chat_id,
                 user_id)


async def position(services: Services, job: Job) -> int | None:
    """The job's place among queued jobs of its worker lane (1 = next), None if not queued."""
    return await services.store.jobs.position(job.id, jobs.Lane.of(job.kind).kinds)


async def submit(services: Services, bot: Bot, *, kind: str, chat_id: int, user_id: int,
                 payload: dict[str, Any], reply_to: int | None, key: str,
                 daily: bool = False) -> Job:
    """Queue a job (for the request ``key``) and post its status message (a reply to
    ``reply_to``). With ``daily`` the job counts in the user's allowance of today.

    Raises :class:`storage.LimitReached` (nothing queued, nothing counted) when the user has
    the most jobs active or, with ``daily``, has used up today's. If the request was queued
    before, its job is returned as it is. The job is queued even if the status message cannot
    be sent; its result is still delivered.
    """
    store = services.store
    settings = services.settings
    queued = await store.jobs.enqueue(kind, chat_id=chat_id, user_id=user_id, payload=payload,
                                      reply_to_message_id=reply_to,
                                      max_attempts=settings.max_attempts, request_key=key,
                                      max_active=settings.max_concurrent_jobs,
                                      daily=(kind, settings.edits_per_day) if daily else None)
    job = queued.job
    if not queued.created:
        log.info("job %d: its request was handled before; not queued again", job.id)
        return job
    services.announcing.add(job.id)
    try:
        text = texts.job_status(job, await position(services, job))
        reply = (ReplyParameters(reply_to, allow_sending_without_reply=True)
                 if reply_to is not None else None)
        try:
            message = await bot.send_message(chat_id, text, reply_parameters=reply)
        except TelegramError as exc:
            log.warning("job %d: could not send its status message: %s", job.id, exc)
            return job
        services.throttle.wrote(chat_id, message.message_id, text)
        await store.jobs.set_status_message(job.id, message.message_id)
        return await store.jobs.get(job.id)
    finally:
        services.announcing.discard(job.id)


async def submit_for_button(services: Services, bot: Bot, query: CallbackQuery, *, kind: str,
                            payload: dict[str, Any], done: str | None = None) -> None:
    """Queue the job a button press asks for, for the presser, as a reply to the button's
    message and counted in today's allowance; answer the press (with ``done``), or say why the
    job was refused (the presser is at a limit). A press handled again after a crash finds
    the job it queued before."""
    assert query.message is not None
    chat_id, presser = query.message.chat.id, query.from_user.id
    refusal = await check_active(services, presser)
    if refusal:
        await query.answer(refusal, show_alert=True)
        return
    try:
        await submit(services, bot, kind=kind, chat_id=chat_id, user_id=presser,
                     payload=payload, reply_to=query.message.message_id, daily=True,
                     key=request_key(kind, chat_id, f"button-{query.id}"))
    except LimitReached as exc:
        await query.answer(limit_refusal(exc), show_alert=True)
        return
    await query.answer(done)


async def submit_photo_job(services: Services, bot: Bot, message: Message, ref: ImageRef, *,
                           kind: str, user_id: int, chat_id: int,
                           payload_for: Callable[[StoredPhoto], Any]) -> Job | None:
    """The steps every photo job takes: check the user's active jobs, store the photo, queue
    the job (its payload built from the stored photo; the limits checked again and today's use
    counted in the same transaction) and keep the photo while the job runs. Refusals are
    answered here (over a limit: once per burst); then None is returned. A request that was
    queued before (handled again after a crash) returns its job and does nothing else."""
    key = request_key(kind, chat_id, message.message_id)
    earlier = await services.store.jobs.find_request(key)
    if earlier is not None:
        return earlier
    refusal = await check_active(services, user_id)
    if refusal is not None:
        await refuse_once_per_burst(services, message, user_id, refusal)
        return None
    try:
        stored = await photos.fetch(bot, services.store, ref, user_id=user_id, chat_id=chat_id)
    except photos.PhotoRefused as exc:
        await message.reply_text(str(exc))
        return None
    try:
        job = await submit(services, bot, kind=kind, chat_id=chat_id, user_id=user_id,
                           payload=jobs.to_json(payload_for(stored)),
                           reply_to=message.message_id, key=key, daily=True)
    except LimitReached as exc:
        await refuse_once_per_burst(services, message, user_id, limit_refusal(exc))
        return None
    await services.store.media.link_job([stored.media_id], job.id)
    return job
