"""A version counter that coroutines can wait on.

Long polling (``getUpdates``) and the control API's ``wait`` both need "sleep until something
changed since version N, or until a timeout" without busy loops.
"""

from __future__ import annotations

import asyncio


class Notifier:
    """Monotonic version plus an event that fires on every bump."""

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def bump(self) -> int:
        """Record a change and wake every waiter."""
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()
        return self.version

    async def wait_after(self, version: int, timeout: float) -> int:
        """Return once ``self.version > version`` or ``timeout`` seconds passed."""
        if self.version > version or timeout <= 0:
            return self.version
        # asyncio.wait (unlike wait_for on Python 3.11) never swallows a cancellation.
        waiter = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait({waiter}, timeout=timeout)
        finally:
            waiter.cancel()
        return self.version
