"""What an operator relies on: health endpoints and metrics of the bot and the worker, and the
bot's allowlist. The real bot long-polls our local Bot API server (botapi/); the worker is the
real one on the tiny model, or a real lane with a stand-in for the engine; the probes are
plain HTTP requests to the processes' health servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import running
from bot.services import Tuning
from botapi import BotApiServer, ControlClient
from oneword import jobs
from oneword.health import HealthServer, probe
from oneword.metrics import ServiceMetrics
from oneword.settings import Settings, SettingsError, load_settings
from storage import Area, JobState, Storage
from storage.stats import QueueStats
from worker.loop import LaneRunner, UserFacingError, run_worker

TUNING = Tuning(delivery_interval=0.1, album_wait=0.4)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def get(http: aiohttp.ClientSession, port: int, path: str) -> tuple[int, str]:
    async with http.get(f"http://127.0.0.1:{port}{path}") as answer:
        return answer.status, await answer.text()


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    """Wait for a condition the code under test brings about (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.05)


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus text exposition, or None."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        found = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if found and found.group(1) == name:
            have = ",".join(sorted((found.group(2) or "").split(","))) if found.group(2) else ""
            if have == wanted:
                return float(found.group(3))
    return None


@pytest.fixture
async def server() -> AsyncIterator[BotApiServer]:
    async with BotApiServer(bot_username="oneword_ops_bot") as srv:
        yield srv


def bot_settings(server: BotApiServer, data_dir: Path, **overrides: Any) -> Settings:
    return Settings(token=server.token, data_dir=str(data_dir), base_url=server.base_url,
                    base_file_url=server.base_file_url, **overrides)


# ------------------------------------------------------------------------------ allowlist


async def test_the_allowlist_refuses_others_politely(server: BotApiServer, tg: ControlClient,
                                                     tmp_path: Path) -> None:
    alice, bob, carol = await tg.user("Alice"), await tg.user("Bob"), await tg.user("Carol")
    group = await tg.create_group("Team", [alice.id, carol.id], admin_ids=[alice.id])
    settings = bot_settings(server, tmp_path / "data", allowed_users=f"{alice.id}",
                            allowed_chats=f" {group['id']} ")
    async with running(settings, TUNING, poll_timeout=1) as app:
        await bob.say("/start")
        refusal = await bob.wait_reply()
        assert refusal.text.startswith("Sorry, this bot is private")
        assert str(bob.id) in refusal.text  # what the owner needs to let Bob in
        await bob.say("/learn mochi")
        assert "private" in (await bob.wait_reply()).text
        await alice.say("/start")
        assert (await alice.wait_reply()).text.startswith("Hi Alice!")
        await carol.in_chat(group["id"]).say("/help")  # Carol is not listed; her group is
        assert "How to use" in (await carol.in_chat(group["id"]).wait_reply()).text
        await carol.say("/start")  # ... but alone she is a stranger
        assert "private" in (await carol.wait_reply()).text
        store = app.bot_data["oneword"].store
        assert await store.jobs.list_active() == []
        with pytest.raises(Exception, match=str(bob.id)):
            await store.users.get(bob.id)  # nothing recorded of a refused sender


def test_allowlist_settings_are_checked() -> None:
    settings = load_settings(environ={"ONEWORD_ALLOWED_USERS": "12, -3", "ONEWORD_LOG_LEVEL":
                                      "warning"})
    assert settings.allowed_user_ids == {12, -3} and settings.allowed_chat_ids == frozenset()
    with pytest.raises(SettingsError, match="'bob' is not one"):
        load_settings(environ={"ONEWORD_ALLOWED_CHATS": "1,bob"})
    with pytest.raises(SettingsError, match="log_level"):
        load_settings(environ={"ONEWORD_LOG_LEVEL": "loud"})


# ------------------------------------------------------------------------------ log level


@pytest.mark.slow  # the real bot or worker process
async def test_the_log_level_setting_and_level_names_in_log_lines(server: BotApiServer,
                                                                    tmp_path: Path) -> None:
    """`oneword bot` as an operator runs it: at DEBUG, debug lines show; each names its level."""
    env = {**os.environ, "TELEGRAM_TOKEN": server.token, "ONEWORD_LOG_LEVEL": "debug",
           "ONEWORD_BASE_URL": server.base_url, "ONEWORD_BASE_FILE_URL": server.base_file_url,
           "ONEWORD_DATA_DIR": str(tmp_path / "data")}
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "oneword", "bot", env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    seen: list[str] = []
    try:
        assert bot.stderr is not None
        while not any("Application started" in line for line in seen):  # polling: SIGINT stops it
            line = (await asyncio.wait_for(bot.stderr.readline(), 120)).decode()
            assert line, "the bot ended: " + "".join(seen[-20:])
            seen.append(line)
    finally:
        bot.send_signal(signal.SIGINT)
        await bot.communicate()  # read what it still logs, or a full pipe would block it
    assert any(re.match(r"\S+ \S+ DEBUG \S+ ", line) for line in seen), "".join(seen[-20:])
    assert any(re.match(r"\S+ \S+ INFO bot\.app bot @\w+ ready", line) for line in seen)
    assert server.token not in "".join(seen)
    quiet = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "oneword", "bot", env={**env, "ONEWORD_LOG_LEVEL": "loud"},
        stderr=asyncio.subprocess.PIPE)
    _, err = await quiet.communicate()
    assert quiet.returncode == 1 and "log_level must be one of" in err.decode()


# ------------------------------------------------------------------ a health port in use


@pytest.mark.slow  # the real bot or worker process
@pytest.mark.parametrize("service", ["bot", "worker"])
async def test_a_taken_health_port_is_one_clear_line(service: str, server: BotApiServer,
                                                      tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "TELEGRAM_TOKEN": server.token, "ONEWORD_BASE_URL": server.base_url,
               "ONEWORD_BASE_FILE_URL": server.base_file_url, "ONEWORD_DEVICE": "cpu",
               "ONEWORD_DATA_DIR": str(tmp_path / "data"), "ONEWORD_HEALTH_PORT": str(port),
               "ONEWORD_HEALTH_LISTEN": "127.0.0.1"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "oneword", service, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await process.communicate()
    lines = [line for line in err.decode().splitlines() if "Traceback" in line or
             line.startswith(f"oneword {service}:")]
    assert process.returncode == 1, err.decode()[-2000:]
    assert lines == [f"oneword {service}: cannot serve health checks on 127.0.0.1:{port} "
                     "(Address already in use); set ONEWORD_HEALTH_PORT to a free port, or 0 "
                     "for none"], err.decode()[-2000:]


# --------------------------------------------------------------------------- the bot's health


@pytest.mark.slow  # the real bot or worker process
async def test_bot_health_answers_and_readiness_fails_when_the_database_is_gone(
        server: BotApiServer, tg: ControlClient, http: aiohttp.ClientSession,
        tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    async with running(bot_settings(server, data, health_port=port, health_listen="127.0.0.1"),
                       TUNING, poll_timeout=1) as app:
        assert await get(http, port, "/livez") == (200, "alive\n")
        status, body = await get(http, port, "/readyz")
        assert status == 200 and '"database": "ok"' in body and '"queue_depth": 0' in body
        store = app.bot_data["oneword"].store
        await store.users.upsert(7, "Someone")
        await store.chats.upsert(7, "private", "")
        for kind in (jobs.JobKind.EDIT, jobs.JobKind.EDIT, jobs.JobKind.LEARN):
            await store.jobs.enqueue(kind, chat_id=7, user_id=7, payload={})
        status, text = await get(http, port, "/metrics")
        assert status == 200
        assert metric(text, "oneword_jobs", kind="edit", state="queued") == 2
        assert metric(text, "oneword_jobs", kind="learn", state="queued") == 1
        assert metric(text, "oneword_queue_depth") == 3
        assert metric(text, "oneword_up", service="bot") == 1
        assert (await get(http, port, "/readyz"))[1].count('"queue_depth": 3') == 1
        assert await asyncio.to_thread(probe, "readyz", port) == 0  # the HEALTHCHECK's command

        shutil.rmtree(data)  # the database file is gone
        status, body = await get(http, port, "/readyz")
        assert status == 503 and '"ready": false' in body and "is gone" in body
        assert (await get(http, port, "/livez"))[0] == 200  # alive, but not ready
        assert await asyncio.to_thread(probe, "readyz", port) == 1
        assert metric((await get(http, port, "/metrics"))[1], "oneword_database_up") == 0
    with pytest.raises(aiohttp.ClientConnectionError):  # the port is freed at shutdown
        await get(http, port, "/livez")


# ------------------------------------------------------------------------ the worker's health


@pytest.mark.slow  # the real bot or worker process
async def test_worker_is_ready_once_its_models_are_loaded(tiny_model_dir: Path,
                                                          http: aiohttp.ClientSession,
                                                          tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(model=str(tiny_model_dir), device="cpu", data_dir=str(tmp_path / "w"),
                        health_port=port, health_listen="127.0.0.1", worker_poll=0.1)
    stopping = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stopping))
    try:
        async def answers() -> bool:
            with contextlib.suppress(aiohttp.ClientConnectionError):
                return (await get(http, port, "/livez"))[0] == 200
            return False

        await until(answers, "the worker's /livez")
        status, body = await get(http, port, "/readyz")
        if status == 503:  # still loading: the models are what it waits for
            assert '"model": "not yet"' in body and '"database": "ok"' in body

        async def ready() -> bool:
            assert not worker.done(), worker
            return (await get(http, port, "/readyz"))[0] == 200
        await until(ready, "the worker's readiness", timeout=300)
        assert '"model": "ok"' in (await get(http, port, "/readyz"))[1]
        assert metric((await get(http, port, "/metrics"))[1], "oneword_up",
                      service="worker") == 1
        shutil.rmtree(tmp_path / "w")
        status, body = await get(http, port, "/readyz")
        assert status == 503 and "is gone" in body
    finally:
        stopping.set()
        await worker


class FussySticker:
    """TEST-ONLY: the part of the engine a sticker job uses; a photo named "bad" is refused."""

    model_id = "stand-in"

    def sticker(self, photo: Path, caption: str | None, report) -> bytes:
        if photo.read_bytes() == b"bad":
            raise UserFacingError("not a photo")
        return b"sticker"


@pytest.mark.slow  # the real bot or worker process
async def test_worker_metrics_count_jobs_durations_waits_and_failures(
        http: aiohttp.ClientSession, tmp_path: Path) -> None:
    settings = load_settings(environ={}, data_dir=str(tmp_path / "data"))
    storage = await Storage.open(settings.data_path)
    metrics = ServiceMetrics("worker")
    health = HealthServer("127.0.0.1", 0, QueueStats.of(storage), metrics)
    await health.start()
    try:
        lane = LaneRunner("short", (jobs.JobKind.STICKER,), storage, settings,
                          FussySticker(), metrics)  # type: ignore[arg-type]
        await storage.users.upsert(5, "Someone")
        await storage.chats.upsert(5, "private", "")
        for content in (b"good", b"bad", b"good"):
            photo = storage.files.store_bytes(Area.PHOTOS, content, ".png")
            payload = jobs.to_json(jobs.StickerPayload(photo, "key", None))
            await storage.jobs.enqueue(jobs.JobKind.STICKER, chat_id=5, user_id=5,
                                       payload=payload)
        status, text = await get(http, health.port, "/metrics")
        assert metric(text, "oneword_jobs", kind="sticker", state="queued") == 3
        for _ in range(3):
            job = await storage.jobs.claim_next(lane.worker_id, lane.kinds)
            assert job is not None
            await lane.run_job(job)
        states = [j.state for j in [await storage.jobs.get(i) for i in (1, 2, 3)]]
        assert states == [JobState.DONE, JobState.FAILED, JobState.DONE]

        status, text = await get(http, health.port, "/metrics")
        assert status == 200
        assert metric(text, "oneword_jobs", kind="sticker", state="done") == 2
        assert metric(text, "oneword_jobs", kind="sticker", state="failed") == 1
        assert metric(text, "oneword_jobs", kind="sticker", state="queued") is None
        assert metric(text, "oneword_queue_depth") == 0
        assert metric(text, "oneword_job_failures_total", kind="sticker", retried="no") == 1
        assert metric(text, "oneword_job_duration_seconds_count", kind="sticker",
                      outcome="done") == 2
        assert metric(text, "oneword_job_duration_seconds_count", kind="sticker",
                      outcome="failed") == 1
        assert metric(text, "oneword_job_queue_wait_seconds_count", kind="sticker") == 3
        assert (await get(http, health.port, "/nowhere"))[0] == 404
    finally:
        await health.stop()
        await storage.close()


async def test_readiness_fails_when_the_postgresql_server_is_gone(
        http: aiohttp.ClientSession, tmp_path: Path) -> None:
    """The shared-database deployment: the server stops under a running process."""
    from storage.pg_cluster import ThrowawayCluster, find_bin_dir

    if find_bin_dir() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL not found (CI must run the PostgreSQL tests)")
        pytest.skip("PostgreSQL not found: install Debian's postgresql package")
    cluster = ThrowawayCluster()
    url = await asyncio.to_thread(cluster.start)
    try:
        storage = await Storage.open(tmp_path / "cache", database_url=url)
        health = HealthServer("127.0.0.1", 0, QueueStats.of(storage), ServiceMetrics("bot"),
                              timeout_s=3.0)
        await health.start()
        try:
            status, body = await get(http, health.port, "/readyz")
            assert status == 200 and '"database": "ok"' in body
            await asyncio.to_thread(cluster.stop)  # the database server is gone
            status, body = await get(http, health.port, "/readyz")
            assert status == 503 and "did not answer within" in body, body
            assert (await get(http, health.port, "/livez"))[0] == 200
        finally:
            await health.stop()
            with contextlib.suppress(Exception):  # closing a pool whose server is gone
                await asyncio.wait_for(storage.close(), 10)
    finally:
        await asyncio.to_thread(cluster.stop)
