"""Webhook delivery: POST queued updates to the URL given in ``setWebhook``.

Updates are sent one at a time in order; one is confirmed (removed from the queue) only when
the bot answers 2xx, otherwise delivery is retried with a short backoff, like Telegram.

A 2xx answer may carry a method call (Telegram's "reply to a webhook"): a JSON, urlencoded
or multipart body with a ``method`` field and that method's parameters. It is run before the
next update is sent; as with Telegram, the bot never learns its result (the call log shows
it, marked ``"via": "webhook_reply"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from .errors import ApiError
from .params import Params, read_body
from .state import World

WebhookReply = Callable[[Params], Awaitable[None]]

LOG = logging.getLogger(__name__)
RETRY_MIN_S = 0.2
RETRY_MAX_S = 2.0


class WebhookDelivery:
    """Background task that drains the update queue into the configured webhook."""

    def __init__(self, world: World, run_reply: WebhookReply) -> None:
        self._world = world
        self._run_reply = run_reply
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0

    async def start(self) -> None:
        """Start the delivery loop on the running event loop."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._task = asyncio.create_task(self._run(), name="botapi-webhook")

    async def stop(self) -> None:
        """Stop delivering and close the HTTP session."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        backoff = RETRY_MIN_S
        while True:
            hook = self._world.config.webhook
            pending = self._world.updates.pending()
            if not hook or not pending:
                await self._world.updates.wait_change(1.0)
                continue
            update = pending[0]
            reply = await self._post(hook, update)
            if reply is not None:
                self._world.updates.confirm(update["update_id"] + 1)
                self.delivered += 1
                backoff = RETRY_MIN_S
                if reply.has("method"):
                    await self._run_reply(reply)
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)

    async def _post(self, hook: dict[str, Any], update: dict[str, Any]) -> Params | None:
        """POST one update; the bot's answer as parameters when it was 2xx, else ``None``."""
        assert self._session is not None
        headers = {}
        if hook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
        try:
            async with self._session.post(hook["url"], json=update, headers=headers) as resp:
                if 200 <= resp.status < 300:
                    return await _reply_params(resp)
                error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = f"Connection failed: {exc.__class__.__name__}"
        hook["last_error_date"] = int(time.time())
        hook["last_error_message"] = error
        LOG.debug("webhook delivery failed: %s", error)
        return None


async def _reply_params(resp: aiohttp.ClientResponse) -> Params:
    """The method call in a webhook's 2xx answer (empty when there is none or it is garbage).

    The update counts as delivered either way: Telegram ignores an unreadable answer.
    """
    try:
        values, uploads = await read_body(resp.content_type, resp.headers, resp.content)
    except ApiError as exc:
        LOG.info("ignoring unreadable webhook answer: %s", exc.description)
        return Params({})
    return Params(values, uploads)
