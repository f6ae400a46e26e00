"""The bot's rate limiter on its own: Telegram's steady limits (20 a minute per group, 30 a
second overall) and a 429's retry_after held by its chat alone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from telegram.error import RetryAfter

from bot.ratelimit import ChatRateLimiter


class FakeTelegram:
    """Records each request's chat and time; answers 429 to the chats told to."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, float]] = []
        self.flooded: dict[Any, int] = {}  # chat -> retry_after of its next answer

    async def call(self, chat_id: Any) -> dict[str, Any]:
        self.sent.append((chat_id, time.monotonic()))
        retry_after = self.flooded.pop(chat_id, None)
        if retry_after is not None:
            raise RetryAfter(retry_after)
        return {"ok": True}


async def send(limiter: ChatRateLimiter, telegram: FakeTelegram, chat_id: Any,
               method: str = "sendMessage") -> Any:
    return await limiter.process_request(telegram.call, (chat_id,), {}, method,
                                         {"chat_id": chat_id}, None)


async def test_a_group_gets_twenty_a_minute_and_other_chats_go_on() -> None:
    limiter, telegram = ChatRateLimiter(), FakeTelegram()
    group, private = -100123, 42
    await asyncio.gather(*(send(limiter, telegram, group) for _ in range(20)))
    held = asyncio.create_task(send(limiter, telegram, group))  # the 21st this minute
    await send(limiter, telegram, private)
    await send(limiter, telegram, -100999)  # another group has its own budget
    await asyncio.sleep(0.3)
    assert not held.done()
    held.cancel()
    assert [chat for chat, _ in telegram.sent].count(group) == 20


async def test_thirty_a_second_overall() -> None:
    limiter, telegram = ChatRateLimiter(), FakeTelegram()
    started = time.monotonic()
    await asyncio.gather(*(send(limiter, telegram, 1000 + i) for i in range(45)))
    # A burst of 30, then the budget refills at 30 a second (a leaky bucket, as aiolimiter
    # and python-telegram-bot's own limiter do): the 15 beyond it take half a second.
    assert telegram.sent[-1][1] - started >= 0.4


async def test_a_flood_wait_holds_its_chat_alone_and_is_honoured() -> None:
    limiter, telegram = ChatRateLimiter(max_retries=2), FakeTelegram()
    flooded, other = 7, 8
    telegram.flooded[flooded] = 1
    started = time.monotonic()
    waiting = asyncio.create_task(send(limiter, telegram, flooded, "deleteMessage"))
    await asyncio.sleep(0.1)
    assert limiter.closed_for(flooded) > 0.5 and limiter.closed_for(other) == 0
    await send(limiter, telegram, other)
    assert not waiting.done()  # the other chat went first
    assert await waiting == {"ok": True}
    retried = [at for chat, at in telegram.sent if chat == flooded][1]
    assert retried - started >= 1.0  # not before its retry_after


async def test_after_the_last_retry_the_flood_wait_reaches_the_caller() -> None:
    limiter, telegram = ChatRateLimiter(max_retries=0), FakeTelegram()
    telegram.flooded[5] = 2
    try:
        await send(limiter, telegram, 5)
    except RetryAfter:
        pass
    else:
        raise AssertionError("RetryAfter expected")
    assert limiter.closed_for(5) > 1.0  # the next request to that chat waits it out
