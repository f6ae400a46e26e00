"""Webhook delivery: POST queued updates to the URL given in ``setWebhook``.

Updates are sent one at a time in order; one is confirmed (removed from the queue) only when
the bot answers 2xx, otherwise delivery is retried with a short backoff, like Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp

from .state import World

LOG = logging.getLogger(__name__)
RETRY_MIN_S = 0.2
RETRY_MAX_S = 2.0


class WebhookDelivery:
    """Background task that drains the update queue into the configured webhook."""

    def __init__(self, world: World) -> None:
        self._world = world
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
            if await self._post(hook, update):
                self._world.updates.confirm(update["update_id"] + 1)
                self.delivered += 1
                backoff = RETRY_MIN_S
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)

    async def _post(self, hook: dict[str, Any], update: dict[str, Any]) -> bool:
        assert self._session is not None
        headers = {}
        if hook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
        try:
            async with self._session.post(hook["url"], json=update, headers=headers) as resp:
                if 200 <= resp.status < 300:
                    return True
                error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = f"Connection failed: {exc.__class__.__name__}"
        hook["last_error_date"] = int(time.time())
        hook["last_error_message"] = error
        LOG.debug("webhook delivery failed: %s", error)
        return False
