"""Flood control: scripted 429 answers and an optional realistic per-chat rate limit.

Tests use the scripted mode ("answer the next 3 sendMessage calls with 429, retry after 1")
to exercise a bot's retry logic deterministically, and the realistic mode to check that a bot
paces itself the way Telegram requires (about 1 message/s per private chat, 20/min per group,
30/s overall).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from .errors import too_many_requests

SEND_METHODS = frozenset({
    "sendmessage", "sendphoto", "senddocument", "sendsticker", "sendanimation",
    "sendmediagroup", "copymessage", "forwardmessage",
})


@dataclass
class ForcedRule:
    """Answer the next ``remaining`` matching calls with 429."""

    remaining: int
    retry_after: int
    methods: frozenset[str] | None

    def matches(self, method: str) -> bool:
        if self.methods is None:
            return method != "getupdates"
        return method in self.methods

    def to_json(self) -> dict[str, Any]:
        return {
            "remaining": self.remaining,
            "retry_after": self.retry_after,
            "methods": sorted(self.methods) if self.methods is not None else None,
        }


@dataclass
class FloodConfig:
    """Realistic limits; ``enabled`` is off by default so tests opt in."""

    enabled: bool = False
    private_per_second: float = 1.0
    group_per_minute: int = 20
    global_per_second: int = 30

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "private_per_second": self.private_per_second,
            "group_per_minute": self.group_per_minute,
            "global_per_second": self.global_per_second,
        }


@dataclass
class RateLimits:
    """Both limit modes plus counters of calls and 429s served."""

    rules: list[ForcedRule] = field(default_factory=list)
    flood: FloodConfig = field(default_factory=FloodConfig)
    served_429: int = 0
    served_by_method: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    _per_chat: dict[int, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _global: deque[float] = field(default_factory=deque)

    def force(self, count: int, retry_after: int = 1, methods: list[str] | None = None) -> None:
        """Answer the next ``count`` calls (of ``methods``, default: all but getUpdates) 429."""
        wanted = frozenset(m.lower() for m in methods) if methods else None
        self.rules.append(ForcedRule(count, max(1, int(retry_after)), wanted))

    def check_forced(self, method: str) -> None:
        """Raise a scripted 429 for this call if a rule still applies."""
        key = method.lower()
        self.calls[method] += 1
        for rule in self.rules:
            if rule.remaining > 0 and rule.matches(key):
                rule.remaining -= 1
                self.rules = [r for r in self.rules if r.remaining > 0]
                self._served(method)
                raise too_many_requests(rule.retry_after)

    def check_flood(self, method: str, chat_id: int, private: bool, messages: int = 1) -> None:
        """Apply realistic limits to a message-sending call (no-op when disabled)."""
        if not self.flood.enabled or method.lower() not in SEND_METHODS:
            return
        now = time.monotonic()
        rate = max(self.flood.private_per_second, 1e-3)
        window, allowed = (
            ((1.0, int(rate)) if rate >= 1 else (1.0 / rate, 1)) if private
            else (60.0, self.flood.group_per_minute)
        )
        chat_log = self._per_chat[chat_id]
        for log, span, cap in ((chat_log, window, allowed),
                               (self._global, 1.0, self.flood.global_per_second)):
            while log and now - log[0] >= span:
                log.popleft()
            if len(log) + messages > cap:
                self._served(method)
                wait = span - (now - log[0]) if log else span
                raise too_many_requests(max(1, math.ceil(wait)))
        for _ in range(messages):
            chat_log.append(now)
            self._global.append(now)

    def _served(self, method: str) -> None:
        self.served_429 += 1
        self.served_by_method[method] += 1

    def to_json(self) -> dict[str, Any]:
        """Counters and configuration for the control API."""
        return {
            "served_429": self.served_429,
            "served_429_by_method": dict(self.served_by_method),
            "calls": dict(self.calls),
            "forced": [rule.to_json() for rule in self.rules],
            "flood": self.flood.to_json(),
        }
