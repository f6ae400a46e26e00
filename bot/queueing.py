"""Putting work into the job queue: per-user limits, the job row, and its status message.

Limits come from settings: ``max_concurrent_jobs`` (queued or running, per user),
``edits_per_day`` (edits and stickers, counted separately, per UTC day) and ``max_concepts``.
Each check returns the refusal to show, or None when the request may go ahead.

After a job is queued the bot answers with ONE status message (queue position, later progress,
see :mod:`bot.delivery`). The job id stays in ``Services.announcing`` until that message is
linked to the job, so the delivery loop never answers a job before its status message exists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from telegram import Bot, Message, ReplyParameters
from telegram.error import TelegramError

from oneword import jobs
from storage import Job

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


async def take_daily(services: Services, user_id: int, kind: str) -> str | None:
    """Count one edit (or sticker) for today; refusal if the daily limit is reached."""
    limit = services.settings.edits_per_day
    if not await services.store.usage.try_increment(user_id, limit, kind):
        return texts.daily_limit(limit)
    return None


async def check_and_count(services: Services, user_id: int, kind: str) -> str | None:
    """Refusal if the user has the most jobs active or has used up today's edits; otherwise
    one more edit (or sticker) is counted for today."""
    return await check_active(services, user_id) or await take_daily(services, user_id, kind)


async def position(services: Services, job: Job) -> int | None:
    """The job's place among queued jobs of its worker lane (1 = next), None if not queued."""
    return await services.store.jobs.position(job.id, jobs.Lane.of(job.kind).kinds)


async def submit(services: Services, bot: Bot, *, kind: str, chat_id: int, user_id: int,
                 payload: dict[str, Any], reply_to: int | None) -> Job:
    """Queue a job and post its status message (a reply to ``reply_to``).

    The job is queued even if the status message cannot be sent; its result is still delivered.
    """
    store = services.store
    queued = await store.jobs.enqueue(kind, chat_id=chat_id, user_id=user_id, payload=payload,
                                      reply_to_message_id=reply_to,
                                      max_attempts=services.settings.max_attempts)
    job = queued.job
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


async def submit_photo_job(services: Services, bot: Bot, message: Message, ref: ImageRef, *,
                           kind: str, user_id: int, chat_id: int,
                           payload_for: Callable[[StoredPhoto], Any]) -> Job | None:
    """The steps every photo job takes: check the user's active jobs, store the photo, count
    today's use, queue the job (its payload built from the stored photo) and keep the photo
    while the job runs. Refusals are answered here; then None is returned."""
    refusal = await check_active(services, user_id)
    if refusal is None:
        try:
            stored = await photos.fetch(bot, services.store, ref, user_id=user_id,
                                        chat_id=chat_id)
        except photos.PhotoRefused as exc:
            refusal = str(exc)
        else:
            refusal = await take_daily(services, user_id, kind)
    if refusal is not None:
        await message.reply_text(refusal)
        return None
    job = await submit(services, bot, kind=kind, chat_id=chat_id, user_id=user_id,
                       payload=jobs.to_json(payload_for(stored)),
                       reply_to=message.message_id)
    await services.store.media.link_job([stored.media_id], job.id)
    return job
