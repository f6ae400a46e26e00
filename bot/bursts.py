"""One refusal per burst: a flood of requests over a limit is answered once, not once each.

Thirty photos sent at once by someone with two jobs running would otherwise get 28 "you
already have 2 jobs" replies; in a group they spend the group's 20 messages a minute and hold
back the results everyone waits for. :class:`BurstGate` lets the first refusal of a burst
through and keeps the rest quiet; a burst lasts while refused requests keep coming less than
``quiet_s`` apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

MAX_KEYS = 10_000  # forget quiet bursts beyond this many remembered ones


class BurstGate:
    """Remembers, per key (a chat and user), when the last refusal was asked for."""

    def __init__(self, quiet_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._quiet_s = quiet_s
        self._clock = clock
        self._last: dict[Hashable, float] = {}

    def first_of_burst(self, key: Hashable) -> bool:
        """True if a refusal for ``key`` should be sent: none was asked for in the last
        ``quiet_s`` seconds. Every call, sent or not, extends the burst."""
        now = self._clock()
        last = self._last.get(key)
        self._last[key] = now
        if len(self._last) > MAX_KEYS:
            self._forget_before(now - self._quiet_s)
        return last is None or now - last >= self._quiet_s

    def _forget_before(self, moment: float) -> None:
        self._last = {key: at for key, at in self._last.items() if at >= moment}
