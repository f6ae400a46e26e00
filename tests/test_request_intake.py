"""No request lost between Telegram and the job queue: the real bot and worker processes on the
tiny model against our Bot API server, the bot killed -9 after Telegram counts the update as
received but before its job exists, or after the job exists but before the update counts as
handled. Each kill waits for the moment it needs (a call the bot made, the update confirmed);
the Bot API server holds one answer back so that moment lasts."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from botapi.client import ControlClient
from storage import Storage
from tests.helpers import SCENE, killed_at_exit, sample, until

HELD_S = 600  # a held answer outlasts the test; the bot is killed while it waits


async def bot_is_up(user: Any) -> None:
    """The bot answers (so it polls, and a held answer is the next of its kind)."""
    await user.say("/help")
    await user.wait_reply(contains="learn", timeout=120)


async def confirmed(tg: ControlClient) -> None:
    """Wait until the bot confirmed every update (its next getUpdates carried the offset):
    from here on Telegram would never deliver them again."""
    await until(lambda: _none_pending(tg), "the bot confirming its updates")


async def _none_pending(tg: ControlClient) -> bool:
    return not (await tg.updates())["pending"]


async def all_handled(store: Storage) -> None:
    """Wait until the restarted bot handled every update it stored."""
    async def settled() -> bool:
        return await store.inbox.count() > 0 and await store.inbox.count_unhandled() == 0
    await until(settled, "the bot handling every stored update", timeout=180)


def jobs_of(store: Storage, user_id: int) -> list[int]:
    """The ids of every job of ``user_id``, in any state."""
    with sqlite3.connect(store.files.db_path) as db:
        return [row[0] for row in db.execute("SELECT id FROM jobs WHERE user_id = ?",
                                             (user_id,))]


@pytest.mark.slow  # the real bot and worker processes
async def test_a_request_survives_a_bot_killed_while_it_fetches_the_photo(tiny_model_dir,
                                                                          tmp_path):
    """The update is confirmed and the bot is downloading the photo (getFile answered late)
    when it is killed; after the restart the user gets the result, once, from one job."""
    data = tmp_path / "data"
    async with killed_at_exit(tiny_model_dir, data) as (services, tg):
        alice = await tg.user("Alice")
        await bot_is_up(alice)
        await tg.slow_answers(1, HELD_S, methods=["getFile"])
        sent = await alice.send_photo(sample("scenes/scene-1.png"),
                                      caption=f"remove the star | {SCENE}")
        await until(lambda: tg.calls("getFile"), "the bot fetching the photo")
        await confirmed(tg)
        services.kill("bot")
        services.start("bot")
        result = await alice.wait_reply(photo=True, timeout=240)
        assert result.reply_to_message_id == sent.message_id
        async with await Storage.open(data) as store:
            await all_handled(store)
            assert len(jobs_of(store, alice.id)) == 1
        assert len([m for m in await tg.bot_messages(alice.id) if m.photo]) == 1


@pytest.mark.slow  # the real bot and worker processes
async def test_a_request_handled_again_after_a_crash_queues_no_second_job(tiny_model_dir,
                                                                          tmp_path):
    """The job is queued and the bot is sending its status message (answered late) when it
    is killed: the update is not marked handled yet, so the restarted bot handles it again;
    it must find the job queued before, not queue a second one."""
    data = tmp_path / "data"
    async with killed_at_exit(tiny_model_dir, data) as (services, tg):
        services.kill("worker")  # the job stays queued while the bot is killed
        alice = await tg.user("Alice")
        await bot_is_up(alice)
        await tg.slow_answers(1, HELD_S, methods=["sendMessage"])
        await alice.send_photo(sample("scenes/scene-1.png"), caption=f"remove the star | {SCENE}")
        await alice.wait_reply(contains="queue", timeout=120)  # sent, its answer held
        services.kill("bot")
        async with await Storage.open(data) as store:
            assert len(jobs_of(store, alice.id)) == 1
            assert await store.inbox.count_unhandled() == 1
            services.start("bot")
            services.start("worker")
            await alice.wait_reply(photo=True, timeout=240)
            await all_handled(store)
            assert len(jobs_of(store, alice.id)) == 1
        assert len([m for m in await tg.bot_messages(alice.id) if m.photo]) == 1
