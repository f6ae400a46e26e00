"""Flood control: scripted 429 answers and an optional realistic per-chat rate limit.

Tests use the scripted mode to exercise a bot's retry logic deterministically: "answer the
next 3 ``deleteMessage`` calls with 429, retry after 20", optionally only for some chats
(``chat_ids``), so that one chat is in flood control while the others are not. Through the
control API: ``POST /control/rate_limit {"count": 3, "retry_after": 20, "methods":
["deleteMessage"], "chat_ids": [42]}`` or ``ControlClient.force_429(3, 20, ["deleteMessage"],
chat_ids=[42])``. Rules stack; each counts down on its own.

Every 429 served (scripted or realistic) opens a wait of ``retry_after`` seconds for that
method in that chat; a call of the same method to the same chat before the wait is over is
recorded in ``early_retries`` (``GET /control/stats``), so a test can assert that a bot
honours ``retry_after``. The realistic mode checks that a bot paces itself the way Telegram
requires (about 1 message/s per private chat, 20/min per group, 30/s overall).

Slow answers (``POST /control/slow {"count": 1, "seconds": 8, "methods": ["sendPhoto"]}`` or
``ControlClient.slow_answers``): the next matching calls are carried out at once but answered
``seconds`` later, as when Telegram is busy, so a test can check that a bot does not take a
late answer for a lost request and send again.
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
# Clocks of client and server differ by the network hop; do not count that as impatience.
EARLY_TOLERANCE_S = 0.05


def chat_key(chat_id: Any) -> str | None:
    """A comparable form of a ``chat_id`` parameter (number, numeric string or @username)."""
    if chat_id is None or chat_id == "":
        return None
    return str(chat_id).strip().lower()


@dataclass
class ForcedRule:
    """Answer the next ``remaining`` matching calls with 429."""

    remaining: int
    retry_after: int
    methods: frozenset[str] | None
    chats: frozenset[str] | None = None

    def matches(self, method: str, chat: str | None) -> bool:
        if self.chats is not None and chat not in self.chats:
            return False
        if self.methods is None:
            return method != "getupdates"
        return method in self.methods

    def to_json(self) -> dict[str, Any]:
        return {
            "remaining": self.remaining,
            "retry_after": self.retry_after,
            "methods": sorted(self.methods) if self.methods is not None else None,
            "chat_ids": sorted(self.chats) if self.chats is not None else None,
        }


@dataclass
class SlowRule:
    """Answer the next ``remaining`` matching calls ``seconds`` late (after carrying them out)."""

    remaining: int
    seconds: float
    methods: frozenset[str] | None  # None: every method but getUpdates

    def matches(self, method: str) -> bool:
        return method != "getupdates" if self.methods is None else method in self.methods


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
    """Both limit modes plus counters of calls, 429s served and retries made too early."""

    rules: list[ForcedRule] = field(default_factory=list)
    slow_rules: list[SlowRule] = field(default_factory=list)
    flood: FloodConfig = field(default_factory=FloodConfig)
    served_429: int = 0
    served_by_method: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    early_retries: list[dict[str, Any]] = field(default_factory=list)
    _per_chat: dict[int, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _global: deque[float] = field(default_factory=deque)
    _waits: dict[tuple[str, str | None], float] = field(default_factory=dict)

    def force(
        self, count: int, retry_after: int = 1, methods: list[str] | None = None,
        chat_ids: list[int | str] | None = None,
    ) -> None:
        """Answer the next ``count`` calls with ``429 retry after <retry_after>``.

        ``methods`` limits the rule to those methods (default: all but getUpdates) and
        ``chat_ids`` to calls whose ``chat_id`` parameter is one of them (default: any call).
        """
        wanted = frozenset(m.lower() for m in methods) if methods else None
        chats = frozenset(k for k in map(chat_key, chat_ids) if k) if chat_ids else None
        self.rules.append(ForcedRule(count, max(1, int(retry_after)), wanted, chats))

    def slow(self, count: int, seconds: float, methods: list[str] | None = None) -> None:
        """Answer the next ``count`` calls of ``methods`` (default: all but getUpdates)
        ``seconds`` late."""
        wanted = frozenset(m.lower() for m in methods) if methods else None
        self.slow_rules.append(SlowRule(count, max(0.0, float(seconds)), wanted))

    def answer_delay(self, method: str) -> float:
        """Seconds to hold this call's answer back (0 unless a slow rule takes it)."""
        for rule in self.slow_rules:
            if rule.remaining > 0 and rule.matches(method.lower()):
                rule.remaining -= 1
                self.slow_rules = [r for r in self.slow_rules if r.remaining > 0]
                return rule.seconds
        return 0.0

    def check_forced(self, method: str, chat_id: Any = None) -> None:
        """Count the call, note an early retry, raise a scripted 429 if a rule applies."""
        key, chat = method.lower(), chat_key(chat_id)
        self.calls[method] += 1
        now = time.monotonic()
        until = self._waits.get((key, chat))
        if until is not None:
            if now < until - EARLY_TOLERANCE_S:
                self.early_retries.append(
                    {"method": method, "chat_id": chat, "early_by_s": round(until - now, 3)}
                )
            else:
                del self._waits[(key, chat)]
        for rule in self.rules:
            if rule.remaining > 0 and rule.matches(key, chat):
                rule.remaining -= 1
                self.rules = [r for r in self.rules if r.remaining > 0]
                self._served(method, chat, rule.retry_after)
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
                wait = max(1, math.ceil(span - (now - log[0]) if log else span))
                self._served(method, chat_key(chat_id), wait)
                raise too_many_requests(wait)
        for _ in range(messages):
            chat_log.append(now)
            self._global.append(now)

    def _served(self, method: str, chat: str | None, retry_after: int) -> None:
        self.served_429 += 1
        self.served_by_method[method] += 1
        self._waits[(method.lower(), chat)] = time.monotonic() + retry_after

    def to_json(self) -> dict[str, Any]:
        """Counters and configuration for the control API."""
        return {
            "served_429": self.served_429,
            "served_429_by_method": dict(self.served_by_method),
            "calls": dict(self.calls),
            "forced": [rule.to_json() for rule in self.rules],
            "early_retries": list(self.early_retries),
            "flood": self.flood.to_json(),
        }
