"""Webhook mode is never open to forged updates: the real bot process in webhook mode against
our Bot API server, which POSTs updates with the secret given to setWebhook, as Telegram does."""

from __future__ import annotations

import asyncio
import socket
import stat
import time
from typing import Any

import aiohttp
import pytest

from bot.startup import StartupError
from bot.webhook import webhook_secret
from botapi import BotApiServer
from botapi.client import ControlClient
from oneword.settings import Settings
from playground.harness import StackProcesses, service_env
from storage.secret_files import stored_secret

BOUND_S = 300.0  # generous: each wait ends at an event; this only stops a hang
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def set_webhook_calls(tg: ControlClient, count: int) -> list[dict[str, Any]]:
    """The bot's setWebhook calls, once there are ``count`` of them."""
    deadline = time.monotonic() + BOUND_S
    while len(calls := [c for c in await tg.calls("setWebhook") if c.get("ok")]) < count:
        assert time.monotonic() < deadline, f"fewer than {count} setWebhook calls"
        await asyncio.sleep(0.2)
    return calls


def forged(user_id: int, text: str, update_id: int) -> dict[str, Any]:
    """An update as Telegram would POST it: ``text`` sent by ``user_id`` in private."""
    person = {"id": user_id, "is_bot": False, "first_name": "Alice"}
    return {"update_id": update_id, "message": {
        "message_id": 900_000 + update_id, "date": int(time.time()), "text": text,
        "chat": {"id": user_id, "type": "private", "first_name": "Alice"}, "from": person,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]}}


async def post(url: str, update: dict[str, Any], secret: str | None) -> int:
    headers = {} if secret is None else {SECRET_HEADER: secret}
    async with aiohttp.ClientSession() as http, http.post(url, json=update,
                                                          headers=headers) as resp:
        return resp.status


async def test_without_a_configured_secret_forged_updates_are_refused(tmp_path):
    """ONEWORD_WEBHOOK_SECRET left empty: the bot makes a strong secret, gives it to
    setWebhook and keeps it (the same after a restart, in a file only its owner reads). A POST
    without the secret or with a wrong one is refused (403) and never obeyed; the updates the
    server sends with it are answered."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    data = tmp_path / "data"
    async with BotApiServer() as server, ControlClient(server.url) as tg:
        services = StackProcesses(service_env(server, "unused", data, {
            "ONEWORD_WEBHOOK_URL": url, "ONEWORD_WEBHOOK_LISTEN": "127.0.0.1",
            "ONEWORD_WEBHOOK_PORT": str(port), "ONEWORD_WEBHOOK_SECRET": ""}))
        try:
            alice = await tg.user("Alice")
            services.start("bot")
            [call] = await set_webhook_calls(tg, 1)
            secret = call["params"].get("secret_token") or ""
            assert len(secret) >= 32, "setWebhook was sent without a strong secret"
            kept = data / ".webhook-secret"
            assert kept.read_text().strip() == secret
            assert stat.S_IMODE(kept.stat().st_mode) & 0o077 == 0

            assert await post(url, forged(alice.id, "/start", 700001), None) == 403
            assert await post(url, forged(alice.id, "/start", 700002), "not-the-secret") == 403
            await alice.say("/help")  # through the server, which sends the secret
            await alice.wait_reply(contains="learn", timeout=BOUND_S)
            assert len(await tg.bot_messages(alice.id)) == 1  # the forged /start: no answer

            services.start("bot")  # a restart keeps the secret
            second = (await set_webhook_calls(tg, 2))[1]
            assert second["params"].get("secret_token") == secret
            assert await post(url, forged(alice.id, "/start", 700003), None) == 403
            assert await post(url, forged(alice.id, "/start", 700004), secret) == 200
            await alice.wait_reply(contains="learn", timeout=BOUND_S)  # the secret is the key
        finally:
            services.crash()


def test_a_configured_secret_telegram_would_refuse_stops_the_start(tmp_path):
    """A configured secret outside Telegram's alphabet stops the start with a sentence, and
    a configured good one is used as it is (nothing stored)."""
    bad = Settings(data_dir=str(tmp_path), webhook_url="https://x.example/hook",
                   webhook_secret="my secret!")
    with pytest.raises(StartupError, match="ONEWORD_WEBHOOK_SECRET"):
        webhook_secret(bad)
    good = Settings(data_dir=str(tmp_path), webhook_secret="Good_secret-123")
    assert webhook_secret(good) == "Good_secret-123"
    assert not (tmp_path / ".webhook-secret").exists()


def test_a_made_secret_is_made_once_and_kept(tmp_path):
    first = stored_secret(tmp_path, "webhook-secret")
    assert first == stored_secret(tmp_path, "webhook-secret")
    assert first != stored_secret(tmp_path / "elsewhere", "webhook-secret")
