"""Workers on several hosts through one PostgreSQL database, and nothing else shared.

Each process gets a data folder of its own, as if on its own machine: photos, concept files,
inversions and results reach the other processes only through the database.
"""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.app import running
from botapi import BotApiServer
from botapi.client import ControlClient
from oneword import jobs
from oneword.settings import Settings
from playground.harness import StackProcesses, service_env
from storage import Area, ChatType, JobState, Storage
from storage.jobs import LEASE_EXPIRED_ERROR
from tests.helpers import BOT_USERNAME, QUICK_SETTINGS, SCENE, TUNING, learn, sample

JOBS = 30
ALICE = 101


def start_worker(url: str, data_dir: Path, log: Path, *extra: str) -> subprocess.Popen:
    log.touch()
    return subprocess.Popen([sys.executable, "-m", "tests.queue_worker", url, str(data_dir),
                             str(log), *extra])


def lines(path: Path) -> list[str]:
    return path.read_text().split()


async def test_two_worker_hosts_share_one_queue_and_take_over_a_killed_workers_job(
    tmp_path: Path, pg_url: str
):
    async with await Storage.open(tmp_path / "bot", database_url=pg_url) as bot:
        await bot.users.upsert(ALICE, "Alice")
        await bot.chats.upsert(ALICE, ChatType.PRIVATE)
        photos: dict[str, bytes] = {}
        job_ids: list[int] = []
        for number in range(JOBS):
            data = f"photo {number}".encode()
            path = await asyncio.to_thread(bot.files.store_bytes, Area.PHOTOS, data, ".png")
            photos[path] = data
            payload = jobs.StickerPayload(photo=path, photo_key=f"key-{number}")
            queued = await bot.jobs.enqueue(jobs.JobKind.STICKER, chat_id=ALICE, user_id=ALICE,
                                            payload=jobs.to_json(payload))
            job_ids.append(queued.job.id)

        log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
        # The first worker runs two jobs and hangs in its third; the second then works
        # beside it; the first is killed mid-job.
        first = start_worker(pg_url, tmp_path / "host-a", log_a, "--stall-at", "3")
        second = None
        try:
            deadline = time.monotonic() + 120
            while len(lines(log_a)) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert len(lines(log_a)) == 3, "the first worker never reached its third job"
            second = start_worker(pg_url, tmp_path / "host-b", log_b)
            while not lines(log_b) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait()
            stalled = lines(log_a)[-1]
            assert (await bot.jobs.get(job_ids[2])).state is JobState.RUNNING  # it held it
            while time.monotonic() < deadline:
                stored = [await bot.jobs.get(job_id) for job_id in job_ids]
                if all(job.state is JobState.DONE for job in stored):
                    break
                await asyncio.sleep(0.2)
        finally:
            for process in (first, second):
                if process is not None:
                    process.kill()
                    process.wait()

        assert [job.state for job in stored] == [JobState.DONE] * JOBS
        started = lines(log_a) + lines(log_b)
        assert sorted(set(started)) == sorted(photos)  # every job ran
        assert len(started) == JOBS + 1  # once each, plus the killed attempt
        assert started.count(stalled) == 2 and stalled in lines(log_b)
        for job in stored:  # each result came through the database, made from the job's photo
            photo = job.payload["photo"]
            result = jobs.from_json(jobs.StickerResult, job.result)
            sticker = await asyncio.to_thread(bot.files.read_bytes, result.sticker)
            assert sticker == b"sticker:" + photos[photo]
            assert job.attempts == (2 if photo == stalled else 1)
            if photo == stalled:
                assert job.error is None or job.error == LEASE_EXPIRED_ERROR


@pytest.mark.slow  # the real bot and worker processes
async def test_bot_and_worker_on_different_hosts_learn_then_edit(
    tiny_model_dir, tmp_path: Path, pg_url: str
):
    async with BotApiServer(privacy_mode=True) as server, ControlClient(server.url) as tg:
        env = service_env(server, tiny_model_dir, tmp_path / "unused", QUICK_SETTINGS)
        service = StackProcesses(env)
        service.start("bot", ONEWORD_DATABASE_URL=pg_url,
                      ONEWORD_DATA_DIR=str(tmp_path / "bot-host"))
        service.start("worker", ONEWORD_DATABASE_URL=pg_url,
                      ONEWORD_DATA_DIR=str(tmp_path / "gpu-host"))
        try:
            alice = await tg.user("Alice")
            learned = await learn(tg, alice)
            assert learned.photo is not None  # the preview came from the worker's host
            photo = await alice.send_photo(sample("scenes/scene-1.png"),
                                           caption=f"replace circle with mochi | {SCENE}")
            result = await alice.wait_reply(photo=True, timeout=180)
            assert result.reply_to_message_id == photo.message_id
        finally:
            logs = service.stop()
        for log in logs.values():
            assert server.token not in log
    # Nothing was shared but the database: each host holds only its own copies.
    assert not (tmp_path / "unused").exists()
    assert list((tmp_path / "gpu-host" / "concepts").iterdir())
    assert not list((tmp_path / "bot-host" / "concepts").iterdir())


async def test_a_photo_over_the_databases_file_limit_is_refused_politely(
    tmp_path: Path, pg_url: str
):
    noise = np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    assert 2**20 < len(buffer.getvalue()) < 20 * 2**20  # fine for Telegram, not for us
    async with BotApiServer(bot_username=BOT_USERNAME) as server, \
            ControlClient(server.url) as tg:
        settings = Settings(token=server.token, data_dir=str(tmp_path / "bot"),
                            base_url=server.base_url, base_file_url=server.base_file_url,
                            database_url=pg_url, max_file_mb=1.0)
        async with running(settings, TUNING, poll_timeout=1):
            alice = await tg.user("Alice")
            await alice.say("/learn mochi")
            await alice.wait_reply(contains="Send me")
            await alice.send_document(buffer.getvalue(), "noise.png", "image/png")
            refusal = (await alice.wait_reply()).text
    assert "too big" in refusal and "1 MB" in refusal
    assert not list((tmp_path / "bot" / "photos").iterdir())  # nothing kept


async def test_a_worker_rides_out_a_database_restart(tmp_path: Path, postgres_url: str):
    from storage.pg_cluster import ThrowawayCluster, find_bin_dir

    if find_bin_dir() is None:  # a server of our own, to restart without disturbing others
        pytest.skip("restarting PostgreSQL needs its programs on this machine")
    with ThrowawayCluster() as cluster:
        async with await Storage.open(tmp_path / "bot", database_url=cluster.url) as bot:
            await bot.users.upsert(ALICE, "Alice")
            await bot.chats.upsert(ALICE, ChatType.PRIVATE)

            async def sticker_done(number: int) -> bool:
                path = await asyncio.to_thread(bot.files.store_bytes, Area.PHOTOS,
                                               f"photo {number}".encode(), ".png")
                payload = jobs.StickerPayload(photo=path, photo_key=f"key-{number}")
                queued = await bot.jobs.enqueue(jobs.JobKind.STICKER, chat_id=ALICE,
                                                user_id=ALICE, payload=jobs.to_json(payload))
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if (await bot.jobs.get(queued.job.id)).state is JobState.DONE:
                        return True
                    await asyncio.sleep(0.1)
                return False

            worker = start_worker(cluster.url, tmp_path / "host-a", tmp_path / "a.log")
            try:
                assert await sticker_done(1)
                await asyncio.to_thread(cluster.restart)  # every connection drops
                assert await sticker_done(2)  # the bot's next request and the worker go on
                assert worker.poll() is None
            finally:
                worker.kill()
                worker.wait()
