"""The delivery loop: a JobQueue job that watches the job table and answers the chats.

Every ``Tuning.delivery_interval`` seconds it

1. edits each waiting or running job's status message to show its queue position or progress,
   at most once per ``settings.group_edit_interval`` (groups) or ``private_edit_interval``
   (private chats) seconds per message, and only when the text changed ("message is not
   modified" is harmless anyway);
2. delivers every finished, undelivered job (``storage.jobs.undelivered``): the result as a
   reply to the request (an edit as a photo with "Why?", "Sticker" and "Another take" buttons,
   a sticker with "Add to my set", a learned concept's preview), or the error text of a failed
   job; marks the job delivered the moment Telegram accepted it; then removes the status
   message.

Each chat's work of a pass runs in a task of its own, one task per chat at a time, so a chat
waiting out flood control (:mod:`bot.ratelimit`) holds nobody else; the pass itself never
waits for them.

Because delivery state lives in the database, a restarted bot delivers what finished while it
was down on its first pass. A transient Telegram failure (timeout, network, flood wait beyond
the rate limiter's retries) leaves the job undelivered for the next pass; a permanent one
(bot blocked, chat gone) is logged and the job marked delivered so it does not loop forever.
The loop re-schedules itself after each pass, so passes never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram import Bot, ReplyParameters
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import ContextTypes, JobQueue

from oneword import jobs
from storage import Job, JobState, StorageError

from . import buttons, packs, texts
from .services import Services

log = logging.getLogger(__name__)

T = TypeVar("T")
JOB_NAME = "delivery"
MAX_DELIVERY_TRIES = 5  # unexpected errors while delivering one job before giving up on it
BATCH = 20  # finished jobs delivered per pass
TIDY_BATCH = 200  # status messages left by a crash, removed by the first pass
STOP_GRACE = 5.0  # seconds a stopping bot lets deliveries in flight finish
STALLED_AFTER_S = 10.0  # a running job without a heartbeat this long: its worker is gone


class ResultMissing(Exception):
    """A finished job's result files are gone or its result is malformed."""


class Delivery:
    """The loop's state: per-job delivery failures and each chat's task in flight. Edit timing
    lives in ``Services``."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._failures: defaultdict[int, int] = defaultdict(int)
        self._chats: dict[int, asyncio.Task[None]] = {}
        self._stopped = False
        self._first_pass = True

    def start(self, job_queue: JobQueue) -> None:
        """Schedule the first pass right away (it answers what finished while we were down)."""
        self._stopped = False
        job_queue.run_once(self._tick, 0, name=JOB_NAME)

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Schedule no further passes; let the chats' tasks in flight end (cancelled after
        ``grace`` seconds: what they had not recorded is delivered by the next start)."""
        self._stopped = True
        tasks = [task for task in self._chats.values() if not task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
        self._chats.clear()

    async def _tick(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await self.run_pass(context.bot)
        except Exception:
            log.exception("delivery pass failed")
        finally:
            if (not self._stopped and context.application.running
                    and context.job_queue is not None):
                context.job_queue.run_once(self._tick, self.services.tuning.delivery_interval,
                                           name=JOB_NAME)

    async def run_pass(self, bot: Bot) -> None:
        """One look at the job table: progress edits, then finished jobs, each chat's in a
        task of its own. Chats whose previous task still runs are left for a later pass."""
        # Taken before reading the table: a chat idle now has no task that could change its
        # jobs while we read them, so nothing read below is stale for our own writes.
        busy = {chat for chat, task in self._chats.items() if not task.done()}
        store = self.services.store
        active = await store.jobs.list_active()
        positions = _positions(active)
        work: defaultdict[int, list[Callable[[], Awaitable[None]]]] = defaultdict(list)
        for job in active:
            if job.status_message_id is not None and job.id not in self.services.announcing:
                work[job.chat_id].append(
                    functools.partial(self._show_progress, bot, job, positions.get(job.id)))
        for job in await store.jobs.undelivered(BATCH):
            if job.id not in self.services.announcing:
                work[job.chat_id].append(functools.partial(self._deliver, bot, job))
        if self._first_pass:  # status messages a crash left behind after their delivery
            self._first_pass = False
            for job in await store.jobs.delivered_with_status(TIDY_BATCH):
                work[job.chat_id].append(functools.partial(self._drop_status, bot, job))
        for chat_id, steps in work.items():
            if chat_id not in busy:
                self._chats[chat_id] = asyncio.create_task(self._serve_chat(chat_id, steps))

    async def _serve_chat(self, chat_id: int, steps: list[Callable[[], Awaitable[None]]]
                          ) -> None:
        try:
            for step in steps:
                try:
                    await step()
                except Exception:
                    log.exception("delivery to chat %d failed", chat_id)
        finally:
            if self._chats.get(chat_id) is asyncio.current_task():
                del self._chats[chat_id]

    # ----------------------------------------------------------------------- progress

    async def _show_progress(self, bot: Bot, job: Job, position: int | None) -> None:
        assert job.status_message_id is not None
        chat_id, message_id = job.chat_id, job.status_message_id
        text = texts.job_status(job, position, stalled=self._stalled(job))
        throttle = self.services.throttle
        if throttle.shows(chat_id, message_id, text):
            return
        if not throttle.due(chat_id, message_id, self.services.edit_interval(chat_id)):
            return
        try:
            await bot.edit_message_text(text, chat_id, message_id)
        except BadRequest as exc:
            reason = exc.message.lower()
            if "not modified" not in reason:
                log.info("job %d: status message not editable (%s); dropping it", job.id,
                         exc.message)
                throttle.forget(chat_id, message_id)
                with contextlib.suppress(StorageError):
                    await self.services.store.jobs.set_status_message(job.id, None)
                return
        except (Forbidden, RetryAfter, NetworkError) as exc:
            log.info("job %d: progress edit failed: %s", job.id, exc)
            return
        throttle.wrote(chat_id, message_id, text)

    def _stalled(self, job: Job) -> bool:
        """A running job whose worker has missed several heartbeats (it beats every second
        or so): it probably died, and the job goes back to the queue when its lease ends."""
        if job.state is not JobState.RUNNING or job.heartbeat_at is None:
            return False
        return time.time() - job.heartbeat_at > STALLED_AFTER_S

    # ----------------------------------------------------------------------- delivery

    async def _deliver(self, bot: Bot, job: Job) -> None:
        try:
            await self._send_outcome(bot, job)
        except BadRequest as exc:  # permanent: this result will never be accepted
            log.warning("job %d: Telegram refused the result: %s", job.id, exc.message)
            await self._say(bot, job, texts.DELIVERY_FAILED)
        except (RetryAfter, NetworkError) as exc:  # transient: try again next pass
            log.info("job %d: delivery postponed: %s", job.id, exc)
            return
        except Forbidden as exc:
            log.info("job %d: chat %d unreachable (%s); dropping the result", job.id,
                     job.chat_id, exc.message)
        except ResultMissing as exc:
            log.warning("job %d: %s", job.id, exc)
            await self._say(bot, job, texts.RESULT_GONE)
        except Exception:
            self._failures[job.id] += 1
            log.exception("job %d: delivery failed (%d of %d)", job.id,
                          self._failures[job.id], MAX_DELIVERY_TRIES)
            if self._failures[job.id] < MAX_DELIVERY_TRIES:
                return
            await self._say(bot, job, texts.DELIVERY_FAILED)
        self._failures.pop(job.id, None)
        # Recorded the moment Telegram accepted the result (or we gave up on it), before any
        # other call: the status message's removal may wait out a flood control, and a crash
        # meanwhile must not send the result again. One window remains: a crash between
        # Telegram's answer and this write (or a send whose answer timed out after Telegram
        # took it) sends the result a second time on the next pass, since the Bot API has no
        # way to make "send" and our "record" one step; `Tuning.reply_timeout` keeps a busy
        # server's late answer out of that window.
        await self.services.store.jobs.mark_delivered(job.id)
        await self._drop_status(bot, job)

    async def _send_outcome(self, bot: Bot, job: Job) -> None:
        if job.state is JobState.FAILED:
            await self._send_text(bot, job, texts.job_failed(job))
        elif job.kind == jobs.JobKind.EDIT:
            result = _result(jobs.EditResult, job)
            image = await self._read(result.image)
            payload = _payload(jobs.EditPayload, job)
            # a photo sent as a file comes back as one: a photo would be recompressed to JPEG
            send = bot.send_document if payload.as_file else bot.send_photo
            await send(job.chat_id, image, caption=texts.edit_done(payload.command.text),
                       reply_markup=buttons.result_keyboard(job.id),
                       reply_parameters=_reply(job),
                       **({"filename": "edited.png"} if payload.as_file else {}))
        elif job.kind == jobs.JobKind.STICKER:
            result = _result(jobs.StickerResult, job)
            sticker = await self._read(result.sticker)
            await bot.send_sticker(job.chat_id, sticker,
                                   reply_markup=buttons.sticker_keyboard(job.id),
                                   reply_parameters=_reply(job))
        elif job.kind == jobs.JobKind.PACK:
            try:
                await packs.deliver_pack(bot, self.services, job, _reply(job))
            except (TypeError, FileNotFoundError) as exc:
                raise ResultMissing(f"pack result unusable: {exc}") from exc
        elif job.kind == jobs.JobKind.LEARN:
            result = _result(jobs.LearnResult, job)
            payload = _payload(jobs.LearnPayload, job)
            caption = texts.learned(payload.name, result.steps, result.warnings, result.seen_as,
                                    payload.kind.value, result.check)
            if result.preview:
                preview = await self._read(result.preview)
                await bot.send_photo(job.chat_id, preview, caption=caption[:1000],
                                     reply_parameters=_reply(job))
            else:
                await self._send_text(bot, job, caption)
        else:
            log.warning("job %d: unknown kind %r finished; nothing to send", job.id, job.kind)

    async def _read(self, path: str) -> bytes:
        try:
            return await asyncio.to_thread(self.services.store.files.read_bytes, path)
        except (OSError, StorageError) as exc:
            raise ResultMissing(f"result file {path!r} unreadable: {exc}") from exc

    async def _send_text(self, bot: Bot, job: Job, text: str) -> None:
        await bot.send_message(job.chat_id, text[:4000], reply_parameters=_reply(job))

    async def _say(self, bot: Bot, job: Job, text: str) -> None:
        """Best-effort notice; delivery goes on whatever happens."""
        try:
            await self._send_text(bot, job, text)
        except TelegramError as exc:
            log.info("job %d: notice not sent: %s", job.id, exc)

    async def _drop_status(self, bot: Bot, job: Job) -> None:
        """Remove a delivered job's status message, and forget it once it is gone (or can
        never go); one left behind by a crash is removed by the next start's first pass."""
        if job.status_message_id is None:
            return
        self.services.throttle.forget(job.chat_id, job.status_message_id)
        try:
            await bot.delete_message(job.chat_id, job.status_message_id)
        except (RetryAfter, NetworkError) as exc:
            log.info("job %d: status message not deleted yet: %s", job.id, exc)
            return
        except TelegramError as exc:
            log.info("job %d: status message not deleted: %s", job.id, exc)
        await self.services.store.jobs.set_status_message(job.id, None)


def _reply(job: Job) -> ReplyParameters | None:
    if job.reply_to_message_id is None:
        return None
    return ReplyParameters(job.reply_to_message_id, allow_sending_without_reply=True)


def _result(cls: type[T], job: Job) -> T:
    try:
        return jobs.from_json(cls, job.result)
    except TypeError as exc:
        raise ResultMissing(f"malformed {job.kind} result: {exc}") from exc


def _payload(cls: type[T], job: Job) -> T:
    try:
        return jobs.from_json(cls, job.payload)
    except (TypeError, ValueError) as exc:  # ValueError: a command that no longer reads
        raise ResultMissing(f"malformed {job.kind} payload: {exc}") from exc


def _positions(active: list[Job]) -> dict[int, int]:
    """Queue positions (1 = next) of queued jobs within their worker lane, as
    :meth:`storage.jobs.JobQueue.position` counts them."""
    counts: defaultdict[jobs.Lane, int] = defaultdict(int)
    positions: dict[int, int] = {}
    for job in sorted(active, key=lambda j: j.id):
        if job.state is JobState.QUEUED:
            counts[jobs.Lane.of(job.kind)] += 1
            positions[job.id] = counts[jobs.Lane.of(job.kind)]
    return positions
