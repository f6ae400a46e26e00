"""The data under the service: a database another process holds locked for long, and a data
folder removed under the running bot and worker. The real processes on the tiny model,
against our Bot API server; the test waits for the lines they log."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import time

import pytest

from storage import DataGone, JobState, Storage
from storage.presence import PresenceGuard
from tests.helpers import SCENE, killed_at_exit, sample

pytestmark = pytest.mark.slow  # the real bot and worker processes

BOUND_S = 600.0  # generous: every wait below ends at an event, this only stops a hang
LOCK_WAIT_LINE = "locked by another process"  # storage's line while a write waits for a lock


async def test_a_long_outside_lock_delays_heartbeats_and_requests_never_ends_them(
        tiny_model_dir, tmp_path):
    """Another process holds the SQLite file with BEGIN EXCLUSIVE while a learning job runs
    (and goes on running after the lock) and a user sends an edit. Both the worker's and the
    bot's writes wait past the busy timeout (they log it); the lock ends after that. The job
    keeps its lease and runs once (one attempt, one answer); the edit sent during the lock is
    queued and done, never refused with "try again"."""
    data = tmp_path / "data"
    # A lease shorter than the job but longer than the lock: a heartbeat that died on the
    # lock would let the job be handed out again while it still runs.
    async with killed_at_exit(tiny_model_dir, data, ONEWORD_WORKER_LEASE="30",
                              ONEWORD_LEARN_STEPS="3000") as (service, tg):
        alice, bob = await tg.user("Alice"), await tg.user("Bob")
        await alice.say("/learn crumb style")  # a style learns every step: a long job
        await alice.wait_reply(contains="photos", timeout=BOUND_S)
        await alice.send_album([sample(f"creature/creature-{i}.png") for i in range(1, 5)])
        await alice.wait_reply(contains="learning: step", timeout=BOUND_S)  # running
        outside = sqlite3.connect(data / "oneword.sqlite3", isolation_level=None, timeout=60)
        try:
            outside.execute("BEGIN EXCLUSIVE")
            await bob.send_photo(sample("scenes/scene-1.png"),
                                 caption=f"remove the star | {SCENE}")
            await service.processes["worker"].wait_for_line(LOCK_WAIT_LINE, BOUND_S)
            await service.processes["bot"].wait_for_line(LOCK_WAIT_LINE, BOUND_S)
        finally:
            outside.execute("ROLLBACK")
            outside.close()
        released = time.time()
        status = await bob.wait_reply(timeout=BOUND_S)
        assert "try again" not in status.text and "queue" in status.text, status.text
        await bob.wait_reply(photo=True, timeout=BOUND_S)
        await alice.wait_reply(contains="I learned", photo=True, timeout=BOUND_S)
        async with await Storage.open(data) as store:
            learning = await store.jobs.get(1)
            assert learning.kind == "learn" and learning.state is JobState.DONE
            assert learning.attempts == 1  # never handed out again
            assert learning.finished_at is not None and learning.finished_at > released
        answers = [m for m in await tg.bot_messages(alice.id) if "I learned" in (m.text or "")]
        assert len(answers) == 1
        assert "taken away" not in service.processes["worker"].output()


async def test_a_data_folder_removed_under_the_running_service_stops_both(
        tiny_model_dir, tmp_path):
    """The data folder is deleted while the bot and the worker run (after a first edit went
    through both). Both stop with a non-zero exit code and a line saying the folder was
    removed; a request sent at that moment is never answered as queued or done."""
    data = tmp_path / "data"
    async with killed_at_exit(tiny_model_dir, data) as (service, tg):
        alice = await tg.user("Alice")
        await alice.send_photo(sample("scenes/scene-1.png"), caption=f"remove the star | {SCENE}")
        await alice.wait_reply(photo=True, timeout=BOUND_S)  # both processes are at work
        shutil.rmtree(data)
        request = await alice.send_photo(sample("scenes/scene-1.png"),
                                         caption=f"remove the circle | {SCENE}")
        for name in ("bot", "worker"):
            running = service.processes[name]
            assert running.process is not None
            try:
                code = await asyncio.to_thread(running.process.wait, BOUND_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the {name} still runs; its last output:\n{running.output()[-3000:]}")
            assert code != 0, f"the {name} ended with exit code 0"
            # the folder or the database file in it, whichever the process met first
            said = [line for line in running.output().splitlines() if f"{name} stopped:" in line]
            assert said and str(data) in said[0] and "removed while in use" in said[0], said
        later = await tg.bot_messages(alice.id, after=request.message_id)
        assert not [m for m in later if m.photo or "queue" in (m.text or "")], later
        assert not data.exists()  # nobody made a fresh, empty one meanwhile


def test_the_guard_notices_a_folder_or_database_removed_or_replaced(tmp_path):
    """Replaced: another file or folder put in place while the old one still existed (as a
    restore does), so the two cannot share an inode."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "db").write_bytes(b"")
    guard = PresenceGuard(data, data / "db")
    guard.check()
    (data / "db.new").write_bytes(b"")
    (data / "db.new").replace(data / "db")
    with pytest.raises(DataGone, match="database file .* was replaced"):
        guard.check()
    data.rename(tmp_path / "old")
    with pytest.raises(DataGone, match="data directory .* was removed"):
        guard.check()
    data.mkdir()
    with pytest.raises(DataGone, match="data directory .* was replaced"):
        guard.check()
    with pytest.raises(DataGone, match="does not exist"):
        PresenceGuard(tmp_path / "never")
