"""The storage side of "no request lost, none doubled, limits that hold", on SQLite and
PostgreSQL: the update inbox, one job per request key, and the per-user limits checked in the
transaction that queues the job (two connections, as two bot tasks or processes would)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from storage import DailyLimitReached, Storage, TooManyActiveJobs

ALICE = 11


@pytest.fixture
async def stores(tmp_path: Path, database_url: str | None):
    """Two storages on one database (two connections racing each other)."""
    first = await Storage.open(tmp_path / "data", database_url=database_url)
    second = await Storage.open(tmp_path / "data", database_url=database_url)
    await first.users.upsert(ALICE, "Alice", None)
    await first.chats.upsert(ALICE, "private", "Alice")
    yield first, second
    await first.close()
    await second.close()


async def test_an_update_is_stored_once_and_stays_unhandled_until_marked(stores):
    store, other = stores
    assert await store.inbox.add(7, {"update_id": 7, "message": {"text": "hi"}})
    assert not await other.inbox.add(7, {"update_id": 7})  # a redelivery
    [stored] = await other.inbox.unhandled()
    assert (stored.update_id, stored.body["message"]["text"], stored.replays) == (7, "hi", 0)
    await other.inbox.replaying(7)
    assert (await store.inbox.unhandled())[0].replays == 1
    await store.inbox.mark_handled(7)
    assert await other.inbox.unhandled() == []
    assert not await store.inbox.add(7, {"update_id": 7})  # still remembered once handled
    assert await store.inbox.prune(-1.0) == 1


async def test_a_request_key_queues_one_job(stores):
    store, other = stores
    first = await store.jobs.enqueue("edit", chat_id=ALICE, user_id=ALICE, request_key="edit:1")
    again = await other.jobs.enqueue("edit", chat_id=ALICE, user_id=ALICE, request_key="edit:1",
                                     max_active=1)  # found before any limit is checked
    assert first.created and not again.created and again.job.id == first.job.id
    assert (await store.jobs.find_request("edit:1")).id == first.job.id
    assert await store.jobs.find_request("edit:2") is None


async def test_thirty_requests_at_once_queue_at_most_the_limit(stores):
    """Thirty enqueues racing on two connections, limit 2: two jobs, 28 refusals, and only the
    two queued jobs counted in today's allowance."""
    async def one(store: Storage, i: int) -> str:
        try:
            await store.jobs.enqueue("edit", chat_id=ALICE, user_id=ALICE,
                                     request_key=f"edit:{i}", max_active=2,
                                     daily=("edit", 100))
        except TooManyActiveJobs as exc:
            assert exc.limit == 2
            return "refused"
        return "queued"
    outcomes = await asyncio.gather(*(one(stores[i % 2], i) for i in range(30)))
    assert outcomes.count("queued") == 2
    assert await stores[0].jobs.count_active(ALICE) == 2
    assert await stores[0].usage.count(ALICE, "edit") == 2


async def test_the_daily_allowance_is_taken_with_the_job_or_not_at_all(stores):
    store, _ = stores
    await store.jobs.enqueue("edit", chat_id=ALICE, user_id=ALICE, daily=("edit", 1))
    with pytest.raises(DailyLimitReached):
        await store.jobs.enqueue("edit", chat_id=ALICE, user_id=ALICE, daily=("edit", 1))
    assert await store.jobs.count_active(ALICE) == 1
    assert await store.usage.count(ALICE, "edit") == 1
