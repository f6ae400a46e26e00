"""No update lost between Telegram and the job queue: updates are stored before they are
confirmed, and marked handled only once their handlers finished.

Telegram forgets an update once the bot confirms it: long polling confirms with the next
``getUpdates`` offset, a webhook with its answer. python-telegram-bot asks for the next offset
(or answers the webhook) as soon as the update is in the Application's queue, long before a
handler stored what the update asks for. So:

* :class:`StoredUpdateQueue` is that queue: putting an update stores it in the database inbox
  (:class:`storage.inbox.UpdateInbox`) first, so the confirmation follows the write; a second
  delivery of a stored update (the bot died before confirming it) is dropped there;
* :class:`InboxApplication` marks an update handled when its handlers have finished, including
  the background tasks they started (``block=False`` handlers, ``create_task``): a context
  variable carries the update's open tasks into every task started while handling it;
* :func:`replay_unhandled` puts the updates a killed bot left unhandled back in the queue at
  start-up, before polling begins.

An update is thus handled at least once. Handling it twice must not do its work twice: a job
carries its request key (:meth:`storage.jobs.JobQueue.enqueue`), so a replayed request finds
its job instead of queueing another. What a replay can repeat is a text answer sent just before
the crash.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine
from typing import Any

from telegram import Update
from telegram.ext import Application

from storage import DataGone, StorageError

from .services import Services, get_services

log = logging.getLogger(__name__)

MAX_REPLAYS = 3  # an update whose handling killed the bot this often is given up on
KEEP_HANDLED_S = 24 * 3600.0  # handled updates are remembered this long (late duplicates)
STORE_RETRY_S = 1.0  # a failed inbox write is tried again after this long, until it succeeds


class _UpdateWork:
    """The tasks started while handling one update that have not finished yet."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def track(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def settled(self) -> None:
        """Wait until every tracked task (and every task those started) has finished."""
        while self.tasks:
            await asyncio.wait(list(self.tasks))


# The update being handled in the current task, inherited by the tasks it starts.
_WORK: contextvars.ContextVar[_UpdateWork | None] = contextvars.ContextVar(
    "oneword_update_work", default=None)


class StoredUpdateQueue(asyncio.Queue):  # type: ignore[type-arg]
    """The Application's update queue: an update is stored in the inbox before it is queued
    (and before Telegram is told it arrived); a redelivered update is dropped."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self._services = services

    async def put(self, item: object) -> None:
        """Store ``item`` (an Update) in the inbox, then queue it; anything else is queued."""
        if isinstance(item, Update) and not await self._store(item):
            log.info("update %d was delivered again; it is stored already", item.update_id)
            return
        await super().put(item)

    async def put_stored(self, update: Update) -> None:
        """Queue an update that is in the inbox already (a replay)."""
        await super().put(update)

    async def _store(self, update: Update) -> bool:
        """Write the update to the inbox, trying again until the database takes it (the
        update stays unconfirmed meanwhile, so Telegram keeps it)."""
        body = update.to_dict()
        while True:
            try:
                return await self._services.store.inbox.add(update.update_id, body)
            except DataGone:
                raise  # nothing can be stored any more: the bot stops (bot.datawatch)
            except StorageError as exc:
                log.warning("update %d not stored yet (%s); trying again", update.update_id,
                            exc)
                await asyncio.sleep(STORE_RETRY_S)


class InboxApplication(Application):  # type: ignore[type-arg]
    """An Application that marks each update handled in the inbox once its handlers, and the
    tasks they started, have finished."""

    def create_task(self, coroutine: Coroutine[Any, Any, Any], update: object | None = None, *,
                    name: str | None = None) -> asyncio.Task[Any]:
        """As :meth:`Application.create_task`; the task also counts as work of the update
        being handled, if any."""
        task = super().create_task(coroutine, update=update, name=name)
        work = _WORK.get()
        if work is not None:
            work.track(task)
        return task

    async def process_update(self, update: object) -> None:
        """Run the handlers of ``update``; once they and their tasks are done, mark it
        handled."""
        if not isinstance(update, Update):
            await super().process_update(update)
            return
        work = _UpdateWork()
        token = _WORK.set(work)
        try:
            await super().process_update(update)
        finally:
            _WORK.reset(token)
        super().create_task(_mark_handled(self, update.update_id, work),
                            name=f"inbox:handled:{update.update_id}")


async def _mark_handled(application: Application, update_id: int, work: _UpdateWork) -> None:
    await work.settled()
    try:
        await get_services(application).store.inbox.mark_handled(update_id)
    except StorageError as exc:  # it is handled again after a restart; jobs are not doubled
        log.warning("update %d handled but not marked so: %s", update_id, exc)


async def replay_unhandled(application: Application) -> int:
    """Queue again the updates stored but never marked handled (the bot died while handling
    them); returns how many. An update replayed ``MAX_REPLAYS`` times already is given up."""
    inbox = get_services(application).store.inbox
    queue = application.update_queue
    assert isinstance(queue, StoredUpdateQueue), "build the Application with StoredUpdateQueue"
    await inbox.prune(KEEP_HANDLED_S)
    replayed = 0
    for stored in await inbox.unhandled():
        if stored.replays >= MAX_REPLAYS:
            log.error("update %d given up after %d replays", stored.update_id, stored.replays)
            await inbox.mark_handled(stored.update_id)
            continue
        update = Update.de_json(stored.body, application.bot)
        if update is None:
            await inbox.mark_handled(stored.update_id)
            continue
        await inbox.replaying(stored.update_id)
        await queue.put_stored(update)
        replayed += 1
    if replayed:
        log.info("%d update(s) left unhandled by the last run queued again", replayed)
    return replayed
