"""The bot's update queue with ``getUpdates`` long-polling semantics.

Mirrors Telegram: updates stay queued until a ``getUpdates`` call passes an ``offset`` above
their id; a call with ``timeout`` waits until an update arrives; a second concurrent
``getUpdates`` terminates the first with 409 Conflict.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from typing import Any

from .errors import conflict
from .ids import IdFactory
from .notify import Notifier

MAX_LIMIT = 100
LOG_SIZE = 1000


class UpdateQueue:
    """Pending updates plus a bounded log of everything ever queued."""

    def __init__(self, ids: IdFactory) -> None:
        self._ids = ids
        self._pending: list[dict[str, Any]] = []
        self._notifier = Notifier()
        self._generation = 0
        self._closed = False
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def pending(self) -> list[dict[str, Any]]:
        """A copy of the queued, unconfirmed updates."""
        return list(self._pending)

    def push(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue ``{"update_id": n, kind: payload}`` and wake pollers."""
        update = {"update_id": self._ids.update_id(), kind: copy.deepcopy(payload)}
        self._pending.append(update)
        self.log.append(update)
        self._notifier.bump()
        return update

    def confirm(self, offset: int) -> None:
        """Forget updates below ``offset``; a negative offset keeps only the last ``-offset``."""
        if offset < 0:
            self._pending = self._pending[offset:]
        elif offset:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]

    def clear(self) -> None:
        """Drop all pending updates (``drop_pending_updates`` and resets)."""
        self._pending.clear()
        self._notifier.bump()

    def poke(self) -> None:
        """Wake waiters without adding an update (e.g. the webhook configuration changed)."""
        self._notifier.bump()

    def close(self) -> None:
        """Release every waiting poller immediately (server shutdown)."""
        self._closed = True
        self._notifier.bump()

    def reopen(self) -> None:
        """Allow waiting again after :meth:`close`."""
        self._closed = False

    async def get(self, offset: int, limit: int, timeout: float) -> list[dict[str, Any]]:
        """``getUpdates``: confirm, then return up to ``limit`` updates, waiting ``timeout``."""
        self._generation += 1
        mine = self._generation
        self._notifier.bump()
        self.confirm(offset)
        limit = min(max(limit, 1), MAX_LIMIT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while True:
            if mine != self._generation:
                raise conflict(
                    "terminated by other getUpdates request; "
                    "make sure that only one bot instance is running"
                )
            if self._pending or self._closed:
                return self._pending[:limit]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await self._notifier.wait_after(self._notifier.version, remaining)

    async def wait_change(self, timeout: float) -> None:
        """Wait until anything happens to the queue, or ``timeout`` (webhook delivery)."""
        await self._notifier.wait_after(self._notifier.version, timeout)
