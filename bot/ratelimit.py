"""Telegram's flood limits, kept per chat so one chat's flood wait never holds another.

python-telegram-bot's ``AIORateLimiter`` pauses *every* request while any ``retry_after`` runs,
so one chat in flood control delays all other chats' results and progress. This limiter
(a :class:`telegram.ext.BaseRateLimiter`) keeps the same steady limits, built on the same
``aiolimiter`` the stock one uses:

* about 30 requests a second overall (requests that name a chat),
* 20 a minute in each group (negative chat ids, or ``@channel`` names),

and handles a 429 answer per chat: the chat is closed until its ``retry_after`` has passed
(no request to it goes out earlier, retries included), the request is retried up to
``max_retries`` times, and every other chat carries on meanwhile. A 429 on a request that
names no chat closes only the chat-less requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.constants import FloodLimit
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

ChatKey = int | str | None
Result = bool | dict[str, Any] | list[dict[str, Any]]
MAX_GROUP_LIMITERS = 512  # idle group limiters beyond this many are dropped


def chat_key(chat_id: Any) -> ChatKey:
    """The chat a request goes to (an int id or an ``@username``), None for chat-less ones."""
    if chat_id is None:
        return None
    with contextlib.suppress(TypeError, ValueError):
        return int(chat_id)
    return str(chat_id)


def is_group(key: ChatKey) -> bool:
    """Groups and channels: negative ids or ``@names`` (private chats have positive ids)."""
    return isinstance(key, str) or (isinstance(key, int) and key < 0)


class ChatRateLimiter(BaseRateLimiter[int]):
    """Steady limits overall and per group; flood waits (429) per chat.

    ``rate_limit_args`` of a request, when given, is its number of retries after a 429.
    """

    def __init__(self, *, overall_per_second: float = FloodLimit.MESSAGES_PER_SECOND,
                 group_per_minute: float = FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP,
                 max_retries: int = 5) -> None:
        self._overall = AsyncLimiter(overall_per_second, 1) if overall_per_second else None
        self._group_rate = group_per_minute
        self._groups: dict[ChatKey, AsyncLimiter] = {}
        self._max_retries = max_retries
        self._closed_until: dict[ChatKey, float] = {}  # loop time when a flood wait ends

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to free."""

    def closed_for(self, key: ChatKey) -> float:
        """Seconds until requests to this chat may go out again (0 when open)."""
        until = self._closed_until.get(key)
        if until is None:
            return 0.0
        left = until - asyncio.get_running_loop().time()
        if left <= 0:
            self._closed_until.pop(key, None)
            return 0.0
        return left

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Result:
        """Send the request when its chat is open and the steady limits allow, retrying
        after each 429 once the chat's ``retry_after`` has passed."""
        key = chat_key(data.get("chat_id"))
        retries = self._max_retries if rate_limit_args is None else rate_limit_args
        attempt = 0
        while True:
            while (wait := self.closed_for(key)) > 0:
                await asyncio.sleep(wait)
            try:
                async with self._limits(key):
                    return await callback(*args, **kwargs)
            except RetryAfter as exc:
                self._close(key, exc.retry_after)
                attempt += 1
                if attempt > retries:
                    raise
                log.info("%s to chat %s: flood wait %s s (retry %d of %d)", endpoint, key,
                         exc.retry_after, attempt, retries)

    def _close(self, key: ChatKey, retry_after: Any) -> None:
        seconds = (retry_after.total_seconds() if hasattr(retry_after, "total_seconds")
                   else float(retry_after))
        until = asyncio.get_running_loop().time() + seconds
        self._closed_until[key] = max(self._closed_until.get(key, 0.0), until)

    @contextlib.asynccontextmanager
    async def _limits(self, key: ChatKey):  # type: ignore[no-untyped-def]
        async with contextlib.AsyncExitStack() as stack:
            if is_group(key) and self._group_rate:
                await stack.enter_async_context(self._group_limiter(key))
            if key is not None and self._overall is not None:
                await stack.enter_async_context(self._overall)
            yield

    def _group_limiter(self, key: ChatKey) -> AsyncLimiter:
        limiter = self._groups.get(key)
        if limiter is None:
            if len(self._groups) >= MAX_GROUP_LIMITERS:
                for other, idle in list(self._groups.items()):
                    if idle.has_capacity(idle.max_rate):
                        del self._groups[other]
            limiter = self._groups[key] = AsyncLimiter(self._group_rate, 60)
        return limiter
