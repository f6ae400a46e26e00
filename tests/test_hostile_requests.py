"""Requests as a flooding user or an attacker would send them, through the real bot and worker
processes on the tiny model against our Bot API server: thirty photos at once in a group under
Telegram's flood limits, a 4,000-character word, names the edit grammar drops, and a learned
word whose file is gone."""

from __future__ import annotations

import asyncio
import re
import sqlite3

import pytest

from storage import Area, Storage
from tests.helpers import BOT_USERNAME, SCENE, SMALL_SCENE, killed_at_exit, learn, sample, until

LIMIT = 2  # the default max_concurrent_jobs
FLOOD = 30
TOO_MANY = "waiting or running"  # words of the refusal over the job limit


async def flood_handled(store: Storage) -> bool:
    """Whether the bot stored all the flood's photos and finished handling every update."""
    with sqlite3.connect(store.files.db_path) as db:
        photos = db.execute("SELECT COUNT(*) FROM update_inbox WHERE body LIKE '%\"photo\"%'")
        unhandled = db.execute("SELECT COUNT(*) FROM update_inbox WHERE handled_at IS NULL")
        return photos.fetchone()[0] == FLOOD and unhandled.fetchone()[0] == 0


def job_count(store: Storage, user_id: int) -> int:
    with sqlite3.connect(store.files.db_path) as db:
        return db.execute("SELECT COUNT(*) FROM jobs WHERE user_id = ?", (user_id,)).fetchone()[0]


@pytest.mark.slow  # the real bot and worker processes
async def test_a_flood_of_photos_queues_the_limit_and_gets_one_refusal(tiny_model_dir, tmp_path):
    """Thirty captioned photos at once in a group whose messages Telegram limits to 20 a
    minute, the worker stopped meanwhile: two jobs, one refusal, and then both results."""
    data = tmp_path / "data"
    async with killed_at_exit(tiny_model_dir, data) as (services, tg):
        services.kill("worker")  # nothing finishes during the flood: the limit must hold
        await tg.flood_control(True, group_per_minute=20)
        alice = await tg.user("Alice")
        group = (await tg.create_group("Flooders", [alice.id]))["id"]
        alice_in = alice.in_chat(group)
        await alice_in.say("/help")
        await alice_in.wait_reply(timeout=120)
        picture = sample("scenes/scene-1.png")
        caption = f"/remove@{BOT_USERNAME} the star | {SCENE}"
        await asyncio.gather(*(alice_in.send_photo(picture, caption=caption)
                               for _ in range(FLOOD)))
        async with await Storage.open(data) as store:
            await until(lambda: flood_handled(store), "the bot handling every photo")
            assert job_count(store, alice.id) == LIMIT
        said = [m.text for m in await tg.bot_messages(group)]
        assert len([text for text in said if TOO_MANY in text]) == 1, said
        services.start("worker")
        async def both_results() -> bool:
            return len([m for m in await tg.bot_messages(group) if m.photo]) == LIMIT
        await until(both_results, "both results delivered", timeout=240)


@pytest.mark.slow  # the real bot and worker processes
async def test_hostile_names_get_polite_short_refusals(tiny_model_dir, tmp_path):
    """A 4,000-character word is refused quoting a short prefix; "/learn the", "as" and
    "style" (words the edit grammar drops, so never usable) are refused by the name rule."""
    async with killed_at_exit(tiny_model_dir, tmp_path / "data") as (services, tg):
        alice = await tg.user("Alice")
        long_word = "x" * 4000
        await alice.say(f"add {long_word}")
        answer = await alice.wait_reply(timeout=120)
        assert "can't be a name" in answer.text and len(answer.text) < 500, answer.text[:200]
        assert "x" * 41 not in answer.text
        await alice.say(f"/learn mochi {long_word}")
        answer = await alice.wait_reply(timeout=60)
        assert "isn't a kind" in answer.text and len(answer.text) < 500, answer.text[:200]
        for word in ("the", "as", "style", "An"):
            await alice.say(f"/learn {word}")
            answer = await alice.wait_reply(timeout=60)
            assert "won't work" in answer.text and "could never be used" in answer.text, (
                word, answer.text)
        assert all(p.running for p in services.processes.values())


@pytest.mark.slow  # the real bot and worker processes
async def test_a_failed_edit_says_what_to_do_not_which_file_failed(tiny_model_dir, tmp_path):
    """The file of a learned word is gone: the failed edit's reply tells the user to learn the
    word again, and names no stored file."""
    data = tmp_path / "data"
    async with killed_at_exit(tiny_model_dir, data) as (services, tg):
        alice = await tg.user("Alice")
        await learn(tg, alice, "mochi")
        for concept_file in (data / Area.CONCEPTS.value).iterdir():
            concept_file.unlink()
        await alice.send_photo(sample("scenes/scene-2.png"),
                               caption=f"add mochi | {SMALL_SCENE}")
        failure = await alice.wait_reply(contains="failed", timeout=240)
        assert "/learn" in failure.text and "/forget" in failure.text, failure.text
        assert not re.search(r"[0-9a-f]{8}|\.safetensors|/", failure.text.replace(
            "/learn", "").replace("/forget", "")), failure.text
