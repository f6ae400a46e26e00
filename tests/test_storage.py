"""Tests of the storage package on a real SQLite file in a temporary data directory, and on a
real PostgreSQL server (every test taking ``database_url`` runs on both; see conftest.py).

A fake clock drives every timestamp, so lease expiry, retry delays and day boundaries are tested
without sleeping.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from storage import (
    LATEST_VERSION,
    Area,
    ChatType,
    ConceptExists,
    ConceptKind,
    ConceptNotFound,
    DatabaseBusy,
    DatabaseUnavailable,
    DataDir,
    FileTooLarge,
    InvalidArgument,
    InvalidConceptName,
    JobCancelled,
    JobNotActive,
    JobNotFound,
    JobState,
    LeaseLost,
    MediaNotFound,
    NotAllowed,
    SchemaTooNew,
    Storage,
    StoredConcept,
    UnsafePath,
    UserNotFound,
    normalize_concept_name,
)
from storage.db import Database
from storage.jobs import LEASE_EXPIRED_ERROR
from storage.migrations import MIGRATIONS, migrate

ALICE, BOB, CAROL = 101, 202, 303
ALICE_DM, BOB_DM, CAROL_DM = ALICE, BOB, CAROL  # Telegram: private chat id == user id
GROUP, OTHER_GROUP = -1001, -1002
T0 = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC


class FakeClock:
    """A settable time source for Storage.open(clock=...)."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def open_storage(database_url: str | None, clock: FakeClock):
    """``Storage.open`` on the test's backend (another call: another process on the same
    database; another ``data_dir``: another host)."""

    def opener(data_dir: Path, **kwargs: object):
        kwargs.setdefault("clock", clock)
        return Storage.open(data_dir, database_url=database_url, **kwargs)

    return opener


@pytest.fixture
async def store(data_dir: Path, open_storage):
    opened = await open_storage(data_dir, busy_timeout_s=5)
    await seed(opened)
    yield opened
    await opened.close()


async def seed(store: Storage) -> None:
    for user_id, name in ((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")):
        await store.users.upsert(user_id, name, name.lower())
        await store.chats.upsert(user_id, ChatType.PRIVATE, name)
    await store.chats.upsert(GROUP, "supergroup", "Friends")
    await store.chats.upsert(OTHER_GROUP, "group", "Work")


async def make_concept(
    store: Storage, owner: int, chat: int, name: str, **kwargs: object
) -> StoredConcept:
    path = store.files.store_bytes(Area.CONCEPTS, b"embedding", ".safetensors")
    return await store.concepts.create(
        owner_id=owner,
        chat_id=chat,
        name=name,
        kind=kwargs.pop("kind", ConceptKind.OBJECT),
        file_path=path,
        base_model="sd-test",
        **kwargs,
    )


# --------------------------------------------------------------------------- schema & files


async def test_fresh_open_creates_layout_and_latest_schema(store: Storage, data_dir: Path):
    assert await store.schema_version() == LATEST_VERSION
    if store.backend == "sqlite":
        assert store.files.db_path == data_dir.resolve() / "oneword.sqlite3"
    for area in Area:
        assert (data_dir / area.value).is_dir()
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))


async def test_wal_foreign_keys_and_busy_timeout(data_dir: Path, clock: FakeClock):
    async with await Storage.open(data_dir, clock=clock, busy_timeout_s=5) as store:
        settings = await store.sqlite_settings()
    assert settings["journal_mode"] == "wal"
    assert settings["foreign_keys"] == 1
    assert settings["busy_timeout"] == 5000
    # WAL is a property of the file: another process's connection sees it too.
    with sqlite3.connect(data_dir / "oneword.sqlite3") as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reopen_is_idempotent_and_keeps_data(data_dir: Path, open_storage):
    async with await open_storage(data_dir) as first:
        await seed(first)
        await make_concept(first, ALICE, ALICE_DM, "rex")
    async with await open_storage(data_dir) as second:
        assert await second.schema_version() == LATEST_VERSION
        found = await second.concepts.get_visible("rex", user_id=ALICE, chat_id=ALICE_DM)
        assert found is not None and found.name == "rex"


async def test_two_processes_opening_a_new_directory_at_once(data_dir: Path, open_storage):
    first, second = await asyncio.gather(open_storage(data_dir), open_storage(data_dir))
    try:
        assert await first.schema_version() == await second.schema_version() == LATEST_VERSION
        await seed(first)
        assert (await second.users.get(ALICE)).name == "Alice"
    finally:
        await first.close()
        await second.close()


async def test_migrates_old_database_keeping_data(data_dir: Path, clock: FakeClock):
    files = DataDir(data_dir)
    files.ensure()
    db = await Database.connect(files.db_path, busy_timeout_s=5, clock=clock)
    assert await migrate(db, target=1) == 1
    concept_file = files.store_bytes(Area.CONCEPTS, b"old", ".bin")
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO users (id, name, created_at, updated_at) VALUES (?, 'Al', 1, 1)", (ALICE,)
        )
        await tx.execute(
            "INSERT INTO chats (id, type, created_at, updated_at) VALUES (?, 'private', 1, 1)",
            (ALICE_DM,),
        )
        await tx.execute(
            "INSERT INTO concepts (owner_id, scope_chat_id, name, name_key, kind, file_path,"
            " base_model, created_at) VALUES (?, ?, 'Rex', 'rex', 'object', ?, 'm', 1)",
            (ALICE, ALICE_DM, concept_file),
        )
        for state in ("done", "queued"):
            await tx.execute(
                "INSERT INTO jobs (kind, state, chat_id, user_id, payload, created_at)"
                " VALUES ('edit', ?, ?, ?, '{\"n\": 1}', 1)",
                (state, ALICE_DM, ALICE),
            )
    await db.close()

    async with await Storage.open(data_dir, clock=clock) as store:
        assert await store.schema_version() == LATEST_VERSION
        assert (await store.users.get(ALICE)).name == "Al"
        rex = await store.concepts.get_visible("REX", user_id=ALICE, chat_id=ALICE_DM)
        assert rex is not None and rex.file_path == concept_file
        done, queued = await store.jobs.get(1), await store.jobs.get(2)
        assert done.delivered and done.state is JobState.DONE  # backfilled: not re-sent
        assert not queued.delivered and queued.payload == {"n": 1}
        assert await store.jobs.undelivered() == []
        claimed = await store.jobs.claim_next("w1")
        assert claimed is not None and claimed.id == 2
        assert await store.usage.increment(ALICE) == 1  # table added by a later step


async def test_refuses_database_from_newer_code(data_dir: Path):
    async with await Storage.open(data_dir):
        pass
    with sqlite3.connect(data_dir / "oneword.sqlite3") as raw:
        raw.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    with pytest.raises(SchemaTooNew):
        opened = await Storage.open(data_dir)
        await opened.close()  # only reached if the check is broken; keeps the test from hanging


async def test_waits_for_another_process_and_survives_cancellation(
    data_dir: Path, clock: FakeClock
):
    async with await Storage.open(data_dir, clock=clock, busy_timeout_s=0.3,
                                  lock_patience_s=0.5) as store:
        await seed(store)
        other_process = sqlite3.connect(data_dir / "oneword.sqlite3", isolation_level=None)
        other_process.execute("BEGIN IMMEDIATE")  # holds the write lock
        try:
            with pytest.raises(DatabaseBusy):  # waited out its patience, then a typed error
                await store.usage.increment(ALICE)
            waiting = asyncio.create_task(store.usage.increment(ALICE))
            await asyncio.sleep(0.05)
            waiting.cancel()  # e.g. the bot shutting down while a write waits for the lock
            with pytest.raises(asyncio.CancelledError):
                await waiting
        finally:
            other_process.execute("ROLLBACK")
            other_process.close()
        # The connection is not left inside the cancelled transaction, and nothing leaked in.
        assert await store.usage.increment(ALICE) == 1
    async with await Storage.open(data_dir, clock=clock) as reopened:
        assert await reopened.usage.count(ALICE) == 1


def test_data_dir_paths_are_generated_and_validated(tmp_path: Path):
    files = DataDir(tmp_path)
    files.ensure()
    rel = files.new_path(Area.PHOTOS, ".jpg")
    assert re.fullmatch(r"photos/[0-9a-f]{32}\.jpg", rel)
    assert files.new_path("photos", ".jpg") != rel
    for bad in (
        "../x",
        "/etc/passwd",
        "photos/../../x",
        "concepts/rex.bin",
        "secrets/" + "a" * 32,
        "photos/" + "a" * 32 + "/x",
        str(tmp_path / rel),
    ):
        with pytest.raises(UnsafePath):
            files.resolve(bad)
    with pytest.raises(UnsafePath):
        files.new_path(Area.PHOTOS, "/../x")
    with pytest.raises(UnsafePath):
        files.check(rel, Area.CONCEPTS)


def test_atomic_writes_leave_no_partial_files(tmp_path: Path):
    files = DataDir(tmp_path)
    files.ensure()
    rel = files.store_bytes(Area.RESULTS, b"v1", ".png")
    assert files.read_bytes(rel) == b"v1"
    with pytest.raises(RuntimeError), files.atomic_path(rel) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert files.read_bytes(rel) == b"v1"  # old content intact
    assert [p.name for p in (tmp_path / "results").iterdir()] == [Path(rel).name]  # no temp
    with open(files.resolve(rel), "rb") as reader:
        files.write_bytes(rel, b"v2")
        assert reader.read() == b"v1"  # the file was replaced by a rename, not rewritten in place
    assert files.read_bytes(rel) == b"v2"
    assert files.delete(rel) and not files.delete(rel)


# --------------------------------------------------------------------------- concept names


@pytest.mark.parametrize("name", ["rex", "Rex_2", "my-dog", "x", "a" * 32])
def test_valid_concept_names(name: str):
    assert normalize_concept_name(f" {name} ") == name


@pytest.mark.parametrize(
    "name", ["", "   ", "a" * 33, "two words", "a/b", "..", "a.b", "rex!", "dog🐶", "<rex>", 7,
             "Мурка", "猫", "café"]
)
def test_invalid_concept_names(name: object):
    with pytest.raises(InvalidConceptName):
        normalize_concept_name(name)


async def test_create_rejects_invalid_name(store: Storage):
    with pytest.raises(InvalidConceptName):
        await make_concept(store, ALICE, ALICE_DM, "../../etc/passwd")
    assert await store.concepts.count_owned(ALICE) == 0


async def test_names_unique_case_insensitively_per_scope(store: Storage):
    rex = await make_concept(store, ALICE, ALICE_DM, "Rex")
    assert rex.name == "Rex" and rex.is_personal and rex.scope_type is ChatType.PRIVATE
    for clash in ("rex", "REX", "rEx"):
        with pytest.raises(ConceptExists):
            await make_concept(store, ALICE, ALICE_DM, clash)
    assert await store.concepts.name_taken("rEX", chat_id=ALICE_DM)
    assert not await store.concepts.name_taken("rex", chat_id=GROUP)
    # Other scopes are independent: Alice's group and Bob's private chat.
    assert not (await make_concept(store, ALICE, GROUP, "rex")).is_personal
    await make_concept(store, BOB, BOB_DM, "REX")
    await make_concept(store, ALICE, ALICE_DM, "My-Dog")
    with pytest.raises(ConceptExists):
        await make_concept(store, ALICE, ALICE_DM, "my-DOG")
    assert await store.concepts.count_owned(ALICE) == 3


# --------------------------------------------------------------------------- privacy

# Who sees what, before any sharing. Alice and Bob are in GROUP; Alice, Bob and Carol may each
# also be in OTHER_GROUP. "rex" is Alice's personal concept, "pet" Bob's, "mug" GROUP's concept
# (taught by Bob there).
VISIBLE_BEFORE_SHARING = {
    (ALICE, ALICE_DM): {"rex"},
    (ALICE, GROUP): {"rex", "mug"},
    (ALICE, OTHER_GROUP): {"rex"},
    (BOB, BOB_DM): {"pet"},  # not "mug": a group concept stays in its group, even for its teacher
    (BOB, GROUP): {"pet", "mug"},  # not "rex": Alice has not shared it
    (BOB, OTHER_GROUP): {"pet"},
    (CAROL, CAROL_DM): set(),
    (CAROL, GROUP): {"mug"},
    (CAROL, OTHER_GROUP): set(),
    (CAROL, ALICE_DM): set(),  # a personal concept never leaks through its chat id
}
VISIBLE_AFTER_SHARING_REX_INTO_GROUP = {
    **VISIBLE_BEFORE_SHARING,
    (BOB, GROUP): {"pet", "mug", "rex"},
    (CAROL, GROUP): {"mug", "rex"},
}


async def assert_visibility(store: Storage, expected: dict[tuple[int, int], set[str]]) -> None:
    for (user, chat), names in expected.items():
        listed = await store.concepts.list_visible(user_id=user, chat_id=chat)
        assert {c.name for c in listed} == names, (user, chat)
        for name in ("rex", "pet", "mug"):
            found = await store.concepts.get_visible(name.upper(), user_id=user, chat_id=chat)
            assert (found is not None) == (name in names), (user, chat, name)


async def test_privacy_matrix(store: Storage):
    rex = await make_concept(store, ALICE, ALICE_DM, "rex")
    await make_concept(store, BOB, BOB_DM, "pet")
    await make_concept(store, BOB, GROUP, "mug")
    await assert_visibility(store, VISIBLE_BEFORE_SHARING)

    await store.concepts.share(rex.id, user_id=ALICE, chat_id=GROUP)
    await store.concepts.share(rex.id, user_id=ALICE, chat_id=GROUP)  # idempotent
    assert await store.concepts.shared_into(rex.id) == [GROUP]
    await assert_visibility(store, VISIBLE_AFTER_SHARING_REX_INTO_GROUP)


async def test_share_rules(store: Storage):
    rex = await make_concept(store, ALICE, ALICE_DM, "rex")
    mug = await make_concept(store, BOB, GROUP, "mug")
    with pytest.raises(NotAllowed):  # only the owner shares
        await store.concepts.share(rex.id, user_id=BOB, chat_id=GROUP)
    with pytest.raises(NotAllowed):  # a group's concept is not anyone's to give away
        await store.concepts.share(mug.id, user_id=BOB, chat_id=OTHER_GROUP)
    with pytest.raises(InvalidArgument):  # never into someone's private chat
        await store.concepts.share(rex.id, user_id=ALICE, chat_id=BOB_DM)
    with pytest.raises(ConceptNotFound):
        await store.concepts.share(9999, user_id=ALICE, chat_id=GROUP)
    # A name the group can already use cannot be shared into it.
    await make_concept(store, ALICE, ALICE_DM, "MUG")
    alice_mug = await store.concepts.get_visible("mug", user_id=ALICE, chat_id=ALICE_DM)
    assert alice_mug is not None
    with pytest.raises(ConceptExists):
        await store.concepts.share(alice_mug.id, user_id=ALICE, chat_id=GROUP)
    assert await store.concepts.shared_into(alice_mug.id) == []


async def test_same_name_precedence_own_then_chat_then_shared(store: Storage):
    own = await make_concept(store, ALICE, ALICE_DM, "rex")
    group = await make_concept(store, BOB, GROUP, "Rex")
    mine = await store.concepts.get_visible("rex", user_id=ALICE, chat_id=GROUP)
    theirs = await store.concepts.get_visible("rex", user_id=BOB, chat_id=GROUP)
    assert mine is not None and mine.id == own.id
    assert theirs is not None and theirs.id == group.id
    listed = await store.concepts.list_visible(user_id=ALICE, chat_id=GROUP)
    assert [c.id for c in listed] == [own.id, group.id]


# --------------------------------------------------------------------------- concept deletion


async def add_photo(store: Storage, user: int, chat: int, uid: str = "u1") -> int:
    path = store.files.store_bytes(Area.PHOTOS, b"jpeg", ".jpg")
    media = await store.media.add(path, "photo", user_id=user, chat_id=chat, file_unique_id=uid)
    return media.id


async def test_delete_removes_concept_shares_media_and_files(store: Storage):
    photo_ids = [await add_photo(store, ALICE, ALICE_DM, f"u{i}") for i in range(3)]
    rex = await make_concept(store, ALICE, ALICE_DM, "rex", media_ids=photo_ids)
    await store.concepts.share(rex.id, user_id=ALICE, chat_id=GROUP)
    photos = await store.media.for_concept(rex.id)
    all_files = [rex.file_path, *(m.path for m in photos)]
    assert len(photos) == 3 and all(store.files.exists(p) for p in all_files)

    with pytest.raises(NotAllowed):
        await store.concepts.delete(rex.id, user_id=BOB)
    assert all(store.files.exists(p) for p in all_files)

    removed = await store.concepts.delete(rex.id, user_id=ALICE)
    assert sorted(removed) == sorted(all_files)
    assert not any(store.files.exists(p) for p in all_files)
    with pytest.raises(ConceptNotFound):
        await store.concepts.get(rex.id)
    with pytest.raises(MediaNotFound):
        await store.media.get(photo_ids[0])
    assert await store.concepts.shared_into(rex.id) == []
    assert await store.concepts.get_visible("rex", user_id=BOB, chat_id=GROUP) is None
    assert await store.concepts.count_owned(ALICE) == 0
    # The name is free again.
    await make_concept(store, ALICE, ALICE_DM, "rex")


async def test_group_concept_delete_needs_teacher_or_force(store: Storage):
    mug = await make_concept(store, BOB, GROUP, "mug")
    with pytest.raises(NotAllowed):
        await store.concepts.delete(mug.id, user_id=ALICE)
    assert await store.concepts.delete(mug.id, user_id=ALICE, force=True) == [mug.file_path]
    assert not store.files.exists(mug.file_path)


async def test_create_is_all_or_nothing(store: Storage):
    bobs_photo = await add_photo(store, BOB, BOB_DM)
    path = store.files.store_bytes(Area.CONCEPTS, b"e", ".bin")
    with pytest.raises(InvalidArgument):  # someone else's photo cannot be attached
        await store.concepts.create(
            owner_id=ALICE, chat_id=ALICE_DM, name="rex", kind="object",
            file_path=path, base_model="m", media_ids=[bobs_photo],
        )  # fmt: skip
    assert not await store.concepts.name_taken("rex", chat_id=ALICE_DM)
    assert (await store.media.get(bobs_photo)).concept_id is None
    with pytest.raises(UnsafePath):  # only storage-generated concept paths
        await store.concepts.create(
            owner_id=ALICE, chat_id=ALICE_DM, name="rex", kind="object",
            file_path="../rex.bin", base_model="m",
        )  # fmt: skip
    with pytest.raises(InvalidArgument):
        await make_concept(store, ALICE, ALICE_DM, "rex", kind="animal")
    with pytest.raises(UserNotFound):
        await make_concept(store, 999, ALICE_DM, "rex")


async def test_group_upgrade_to_supergroup_keeps_concepts(store: Storage):
    rex = await make_concept(store, ALICE, ALICE_DM, "rex")
    await make_concept(store, BOB, OTHER_GROUP, "mug")
    await store.concepts.share(rex.id, user_id=ALICE, chat_id=OTHER_GROUP)
    new_id = -100999
    with pytest.raises(InvalidArgument):  # a private chat never turns into a group
        await store.chats.upsert(ALICE_DM, "group", "Alice")
    chat = await store.chats.migrate_to_supergroup(OTHER_GROUP, new_id)
    assert chat.type is ChatType.SUPERGROUP and chat.title == "Work"
    names = {c.name for c in await store.concepts.list_visible(user_id=CAROL, chat_id=new_id)}
    assert names == {"rex", "mug"}
    assert await store.concepts.list_visible(user_id=CAROL, chat_id=OTHER_GROUP) == []


# --------------------------------------------------------------------------- jobs


async def test_enqueue_positions_claim_order_and_kind_filter(store: Storage):
    learn = await store.jobs.enqueue("learn", chat_id=ALICE_DM, user_id=ALICE, payload={"a": 1})
    edit1 = await store.jobs.enqueue("edit", chat_id=ALICE_DM, user_id=ALICE)
    sticker = await store.jobs.enqueue("sticker", chat_id=GROUP, user_id=BOB)
    edit2 = await store.jobs.enqueue("edit", chat_id=GROUP, user_id=BOB, reply_to_message_id=5)
    assert [q.position for q in (learn, edit1, sticker, edit2)] == [1, 2, 3, 4]
    assert learn.job.state is JobState.QUEUED and learn.job.payload == {"a": 1}
    assert edit2.job.reply_to_message_id == 5
    assert await store.jobs.position(edit2.job.id, kinds=["edit", "sticker"]) == 3
    assert await store.jobs.queue_length() == 4

    # Only sticker jobs: the sticker, even though older jobs wait.
    only_sticker = await store.jobs.claim_next("w-sticker", kinds=["sticker"])
    assert only_sticker is not None and only_sticker.id == sticker.job.id
    assert await store.jobs.claim_next("w-sticker", kinds=["sticker"]) is None
    assert await store.jobs.position(sticker.job.id) is None  # running, not queued
    assert await store.jobs.position(edit2.job.id) == 3

    # Priority: edits before the older training.
    first = await store.jobs.claim_next("w1", kinds=["edit", "learn"])
    assert first is not None and first.id == edit1.job.id
    assert first.state is JobState.RUNNING and first.worker_id == "w1" and first.attempts == 1
    assert first.started_at == T0 and first.lease_until == T0 + 120
    assert await store.jobs.position(learn.job.id) == 1
    assert await store.jobs.position(edit2.job.id) == 2

    # fifo: the kinds only filter, so the oldest (the training) wins.
    oldest = await store.jobs.claim_next("w2", kinds=["edit", "learn"], fifo=True)
    assert oldest is not None and oldest.id == learn.job.id
    last = await store.jobs.claim_next("w3")
    assert last is not None and last.id == edit2.job.id
    assert await store.jobs.claim_next("w3") is None
    with pytest.raises(InvalidArgument):
        await store.jobs.enqueue("Bad Kind", chat_id=ALICE_DM, user_id=ALICE)
    with pytest.raises(UserNotFound):
        await store.jobs.enqueue("edit", chat_id=ALICE_DM, user_id=999)


async def test_two_connections_claiming_concurrently_never_share_a_job(
    store: Storage, tmp_path: Path, open_storage
):
    ids = [
        (await store.jobs.enqueue("edit", chat_id=ALICE_DM, user_id=ALICE)).job.id
        for _ in range(24)
    ]
    other = await open_storage(tmp_path / "other-host", busy_timeout_s=5)

    async def drain(storage: Storage, worker: str) -> list[int]:
        claimed = []
        while (job := await storage.jobs.claim_next(worker)) is not None:
            assert job.worker_id == worker
            claimed.append(job.id)
        return claimed

    try:
        results = await asyncio.gather(
            drain(store, "a1"), drain(other, "b1"), drain(store, "a2"), drain(other, "b2")
        )
    finally:
        await other.close()
    claimed = [job_id for result in results for job_id in result]
    assert sorted(claimed) == ids  # every job claimed exactly once
    for job_id in ids:
        job = await store.jobs.get(job_id)
        assert job.attempts == 1 and job.state is JobState.RUNNING


async def test_heartbeat_records_progress_and_extends_lease(store: Storage, clock: FakeClock):
    queued = await store.jobs.enqueue("learn", chat_id=ALICE_DM, user_id=ALICE)
    await store.jobs.set_status_message(queued.job.id, 77)
    await store.jobs.claim_next("w1", lease_s=30)
    clock.advance(20)
    job = await store.jobs.heartbeat(queued.job.id, "w1", 0.25, "step 50/200")
    assert (job.progress, job.progress_text) == (0.25, "step 50/200")
    assert job.heartbeat_at == T0 + 20 and job.lease_until == T0 + 20 + 120
    assert job.status_message_id == 77
    job = await store.jobs.heartbeat(queued.job.id, "w1", 7.0, "x" * 500, lease_s=30)
    assert job.progress == 1.0 and len(job.progress_text) == 200
    assert job.lease_until == T0 + 20 + 30
    job = await store.jobs.heartbeat(queued.job.id, "w1")  # lease only, progress kept
    assert job.progress == 1.0
    clock.advance(25)  # 45 s after the claim, but only 25 s after the last heartbeat
    assert await store.jobs.requeue_stale() == []
    with pytest.raises(LeaseLost):
        await store.jobs.heartbeat(queued.job.id, "intruder", 0.5)
    with pytest.raises(JobNotFound):
        await store.jobs.heartbeat(9999, "w1", 0.5)


async def test_complete_and_undelivered_results_survive_a_bot_restart(
    store: Storage, data_dir: Path, clock: FakeClock, open_storage
):
    queued = await store.jobs.enqueue("edit", chat_id=GROUP, user_id=BOB)
    await store.jobs.claim_next("w1")
    clock.advance(3)
    done = await store.jobs.complete(queued.job.id, "w1", {"media_id": 7})
    assert done.state is JobState.DONE and done.result == {"media_id": 7}
    assert done.finished_at == T0 + 3 and done.progress == 1.0 and not done.delivered
    with pytest.raises(LeaseLost):  # finished: the lease is gone
        await store.jobs.heartbeat(queued.job.id, "w1", 0.5)

    async with await open_storage(data_dir) as restarted_bot:
        pending = await restarted_bot.jobs.undelivered()
        assert [j.id for j in pending] == [queued.job.id]
        await restarted_bot.jobs.mark_delivered(queued.job.id)
    assert await store.jobs.undelivered() == []
    assert (await store.jobs.get(queued.job.id)).delivered
    with pytest.raises(JobNotFound):
        await store.jobs.mark_delivered(9999)


async def test_cancel_queued_and_running_jobs(store: Storage):
    queued = await store.jobs.enqueue("edit", chat_id=ALICE_DM, user_id=ALICE)
    with pytest.raises(NotAllowed):
        await store.jobs.cancel(queued.job.id, user_id=BOB)
    cancelled = await store.jobs.cancel(queued.job.id, user_id=ALICE)
    assert cancelled.state is JobState.CANCELLED and cancelled.delivered
    assert await store.jobs.claim_next("w1") is None
    with pytest.raises(JobNotActive):
        await store.jobs.cancel(queued.job.id, user_id=ALICE)

    running = await store.jobs.enqueue("learn", chat_id=ALICE_DM, user_id=ALICE)
    await store.jobs.claim_next("w1")
    await store.jobs.cancel(running.job.id)  # e.g. by an admin, rights checked by the bot
    # The worker finds out at its next call and cannot overwrite the cancellation.
    with pytest.raises(JobCancelled):
        await store.jobs.heartbeat(running.job.id, "w1", 0.5)
    with pytest.raises(JobCancelled):
        await store.jobs.complete(running.job.id, "w1", {"x": 1})
    with pytest.raises(JobCancelled):
        await store.jobs.fail(running.job.id, "w1", "boom")
    job = await store.jobs.get(running.job.id)
    assert job.state is JobState.CANCELLED and job.result is None
    assert await store.jobs.list_active(user_id=ALICE) == []
    assert await store.jobs.undelivered() == []


async def test_fail_retries_until_max_attempts(store: Storage, clock: FakeClock):
    queued = await store.jobs.enqueue("edit", chat_id=ALICE_DM, user_id=ALICE, max_attempts=2)
    job_id = queued.job.id
    await store.jobs.claim_next("w1")
    retried = await store.jobs.fail(job_id, "w1", "CUDA OOM", retry_delay_s=60)
    assert retried.state is JobState.QUEUED and retried.attempts == 1
    assert retried.error == "CUDA OOM" and retried.worker_id is None
    assert await store.jobs.claim_next("w1") is None  # retry delay not over
    clock.advance(61)
    again = await store.jobs.claim_next("w2")
    assert again is not None and again.id == job_id and again.attempts == 2
    assert await store.jobs.undelivered() == []
    final = await store.jobs.fail(job_id, "w2", "CUDA OOM again")
    assert final.state is JobState.FAILED and final.error == "CUDA OOM again"
    assert final.finished_at == T0 + 61
    assert [j.id for j in await store.jobs.undelivered()] == [job_id]  # the user hears of it

    hopeless = await store.jobs.enqueue("edit", chat_id=ALICE_DM, user_id=ALICE)
    await store.jobs.claim_next("w1")
    failed = await store.jobs.fail(hopeless.job.id, "w1", "not a photo", retry=False)
    assert failed.state is JobState.FAILED and failed.attempts == 1


async def test_crashed_worker_jobs_are_requeued_then_failed(store: Storage, clock: FakeClock):
    queued = await store.jobs.enqueue("learn", chat_id=ALICE_DM, user_id=ALICE, max_attempts=2)
    job_id = queued.job.id
    await store.jobs.claim_next("crashy", lease_s=30)
    clock.advance(29)
    assert await store.jobs.requeue_stale() == []  # lease still valid
    clock.advance(2)
    recovered = await store.jobs.requeue_stale()
    assert [(j.id, j.state) for j in recovered] == [(job_id, JobState.QUEUED)]
    assert recovered[0].error == LEASE_EXPIRED_ERROR and recovered[0].worker_id is None
    with pytest.raises(LeaseLost):  # the "crashed" worker wakes up: too late
        await store.jobs.complete(job_id, "crashy", {})

    # claim_next recovers expired leases by itself; the second attempt crashes too.
    second = await store.jobs.claim_next("w2", lease_s=30)
    assert second is not None and second.id == job_id and second.attempts == 2
    clock.advance(31)
    assert await store.jobs.claim_next("w3") is None
    job = await store.jobs.get(job_id)
    assert job.state is JobState.FAILED and job.error == LEASE_EXPIRED_ERROR
    assert [j.id for j in await store.jobs.undelivered()] == [job_id]


async def test_release_returns_job_without_using_an_attempt(store: Storage):
    queued = await store.jobs.enqueue("learn", chat_id=ALICE_DM, user_id=ALICE)
    await store.jobs.claim_next("w1")
    released = await store.jobs.release(queued.job.id, "w1")
    assert released.state is JobState.QUEUED and released.attempts == 0
    with pytest.raises(LeaseLost):
        await store.jobs.release(queued.job.id, "w1")
    assert (await store.jobs.claim_next("w2")).attempts == 1


async def test_active_jobs_per_user(store: Storage):
    a1 = await store.jobs.enqueue("learn", chat_id=ALICE_DM, user_id=ALICE)
    a2 = await store.jobs.enqueue("edit", chat_id=GROUP, user_id=ALICE)
    await store.jobs.enqueue("edit", chat_id=GROUP, user_id=BOB)
    await store.jobs.claim_next("w1")
    assert await store.jobs.count_active(ALICE) == 2
    assert await store.jobs.count_active(ALICE, kinds=["learn"]) == 1
    assert [j.id for j in await store.jobs.list_active(user_id=ALICE)] == [a1.job.id, a2.job.id]
    assert len(await store.jobs.list_active(chat_id=GROUP)) == 2
    await store.jobs.cancel(a2.job.id, user_id=ALICE)
    assert await store.jobs.count_active(ALICE) == 1
    assert await store.jobs.count_active(CAROL) == 0


# --------------------------------------------------------------------------- usage & caches


async def test_daily_edit_counter(store: Storage, clock: FakeClock):
    assert await store.usage.count(ALICE) == 0
    assert await store.usage.increment(ALICE) == 1
    assert await store.usage.increment(ALICE) == 2
    assert await store.usage.increment(ALICE, "sticker") == 1
    assert await store.usage.count(ALICE) == 2 and await store.usage.count(BOB) == 0
    yesterday = store.usage.today()
    assert yesterday == "2025-06-15"
    clock.advance(24 * 3600)  # a new UTC day starts from zero
    assert await store.usage.count(ALICE) == 0
    assert await store.usage.count(ALICE, day=yesterday) == 2
    assert [await store.usage.try_increment(ALICE, limit=2) for _ in range(3)] == [
        True,
        True,
        False,
    ]
    assert await store.usage.count(ALICE) == 2
    with pytest.raises(UserNotFound):
        await store.usage.increment(999)


async def test_inversion_cache_index(store: Storage, clock: FakeClock):
    key = ("AgADfile1", "sd-test", "ddim50")
    assert await store.inversions.get(*key) is None
    first = store.files.store_bytes(Area.INVERSIONS, b"latents", ".pt")
    await store.inversions.put(*key, first)
    clock.advance(10)
    hit = await store.inversions.get(*key)
    assert hit is not None and hit.path == first
    assert (hit.created_at, hit.last_used_at) == (T0, T0 + 10)
    assert await store.inversions.get("AgADfile1", "sd-test", "other-mode") is None

    second = store.files.store_bytes(Area.INVERSIONS, b"latents2", ".pt")
    await store.inversions.put(*key, second)  # replacing removes the old file
    assert not store.files.exists(first)
    with pytest.raises(UnsafePath):
        await store.inversions.put(*key, store.files.new_path(Area.PHOTOS, ".jpg"))

    # LRU eviction keeps the most recently used entries.
    other = ("AgADfile2", "sd-test", "ddim50")
    other_path = store.files.store_bytes(Area.INVERSIONS, b"x", ".pt")
    clock.advance(10)
    await store.inversions.put(*other, other_path)
    clock.advance(10)
    await store.inversions.get(*key)  # now "key" is the most recent
    assert await store.inversions.evict(max_entries=1) == [other_path]
    assert not store.files.exists(other_path) and await store.inversions.count() == 1
    clock.advance(3600)
    assert await store.inversions.evict(unused_for_s=1800) == [second]
    assert await store.inversions.count() == 0

    # An entry whose file vanished is a miss, and is forgotten.
    third = store.files.store_bytes(Area.INVERSIONS, b"y", ".pt")
    await store.inversions.put(*key, third)
    store.files.delete(third)
    assert await store.inversions.get(*key) is None
    assert await store.inversions.count() == 0


async def test_media_lookup_and_retention(store: Storage, clock: FakeClock):
    photo_id = await add_photo(store, ALICE, ALICE_DM, "AgADsame")
    found = await store.media.find(user_id=ALICE, file_unique_id="AgADsame")
    assert found is not None and found.id == photo_id
    assert await store.media.find(user_id=BOB, file_unique_id="AgADsame") is None
    queued = await store.jobs.enqueue("edit", chat_id=ALICE_DM, user_id=ALICE)
    await store.media.link_job([photo_id], queued.job.id)
    old_result = store.files.store_bytes(Area.RESULTS, b"png", ".png")
    await store.media.add(old_result, "result", user_id=ALICE, chat_id=ALICE_DM)
    clock.advance(7 * 24 * 3600)
    # The photo's job is still queued, so only the result goes.
    assert await store.media.purge_older_than(24 * 3600) == [old_result]
    await store.jobs.cancel(queued.job.id)
    photo_path = (await store.media.get(photo_id)).path
    assert await store.media.purge_older_than(24 * 3600) == [photo_path]
    assert not store.files.exists(photo_path)


# ------------------------------------------------------- PostgreSQL: hosts sharing a database


@pytest.fixture
async def two_hosts(tmp_path: Path, pg_url: str, clock: FakeClock):
    """Two storages on one PostgreSQL database, each with a data folder of its own."""
    first = await Storage.open(tmp_path / "host-a", database_url=pg_url, clock=clock)
    second = await Storage.open(tmp_path / "host-b", database_url=pg_url, clock=clock)
    await seed(first)
    yield first, second
    await first.close()
    await second.close()


async def test_files_travel_through_the_database_between_hosts(two_hosts):
    bot, worker = two_hosts
    photo = await asyncio.to_thread(bot.files.store_bytes, Area.PHOTOS, b"jpeg bytes", ".jpg")
    await bot.jobs.enqueue("edit", chat_id=ALICE_DM, user_id=ALICE, payload={"photo": photo})
    assert not (worker.files.root / photo).exists() and worker.files.exists(photo)
    job = await worker.jobs.claim_next("w1")
    assert job is not None and worker.files.resolve(job.payload["photo"]).read_bytes() == (
        b"jpeg bytes")

    # A library writes straight to a resolved path; recording the result publishes the file.
    result = worker.files.new_path(Area.RESULTS, ".png")
    worker.files.resolve(result).write_bytes(b"png bytes")
    concept_file = worker.files.new_path(Area.CONCEPTS, ".safetensors")
    worker.files.resolve(concept_file).write_bytes(b"embedding")
    concept = await worker.concepts.create(owner_id=ALICE, chat_id=ALICE_DM, name="rex",
                                           kind="object", file_path=concept_file,
                                           base_model="sd-test")
    await worker.jobs.complete(job.id, "w1", {"image": result, "nested": [{"x": concept_file}]})
    assert bot.files.read_bytes(result) == b"png bytes"
    assert bot.files.read_bytes(concept.file_path) == b"embedding"

    await bot.concepts.delete(concept.id, user_id=ALICE)  # gone for every host
    assert not worker.files.exists(concept_file)


async def test_database_refuses_files_over_the_size_limit(tmp_path: Path, pg_url: str):
    async with await Storage.open(tmp_path / "d", database_url=pg_url,
                                  max_file_bytes=1000) as store:
        store.files.store_bytes(Area.PHOTOS, b"x" * 1000, ".jpg")
        with pytest.raises(FileTooLarge):
            store.files.store_bytes(Area.PHOTOS, b"x" * 1001, ".jpg")
        assert len(list((tmp_path / "d" / "photos").iterdir())) == 1  # the refused one is not kept


async def test_retention_deletes_old_results_from_the_database(two_hosts, clock: FakeClock):
    bot, worker = two_hosts
    old = worker.files.store_bytes(Area.RESULTS, b"old", ".png")
    bot.files.read_bytes(old)  # a cached copy on the bot's host too
    clock.advance(10 * 24 * 3600)
    new = worker.files.store_bytes(Area.RESULTS, b"new", ".png")
    assert await worker.apply_retention(7 * 24 * 3600) >= 1
    assert not bot.files.exists(old) and bot.files.read_bytes(new) == b"new"
    with pytest.raises(InvalidArgument):
        await worker.apply_retention(0)


async def test_idle_worker_is_woken_by_a_notice_not_a_timeout(two_hosts):
    bot, worker = two_hosts
    assert await worker.jobs.wait_for_work("w1", 0.1)  # the first look never waits
    waiting = asyncio.create_task(worker.jobs.wait_for_work("w1", 0.1))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # nothing queued: it keeps waiting (polling would be done)
    await bot.jobs.enqueue("edit", chat_id=ALICE_DM, user_id=ALICE)
    assert await asyncio.wait_for(waiting, 30)  # True: a notice woke it
    assert (await worker.jobs.claim_next("w1")) is not None


async def test_postgres_writers_wait_for_each_other_then_say_busy(
    data_dir: Path, pg_url: str, clock: FakeClock
):
    import psycopg

    from storage.pg import WRITER_LOCK

    async with await Storage.open(data_dir, database_url=pg_url, clock=clock,
                                  busy_timeout_s=0.3) as store:
        await seed(store)
        with psycopg.connect(pg_url, autocommit=False) as other_process:
            other_process.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
            with pytest.raises(DatabaseBusy):  # waited busy_timeout_s, then a typed error
                await store.usage.increment(ALICE)
            waiting = asyncio.create_task(store.usage.increment(ALICE))
            await asyncio.sleep(0.05)
            waiting.cancel()  # e.g. the bot shutting down while a write waits for the lock
            with pytest.raises(asyncio.CancelledError):
                await waiting
            # Claims do not wait for the writer lock: workers keep going meanwhile.
            queued = await store.jobs.claim_next("w1")
            assert queued is None
            other_process.rollback()
        assert await store.usage.increment(ALICE) == 1
    async with await Storage.open(data_dir, database_url=pg_url, clock=clock) as reopened:
        assert await reopened.usage.count(ALICE) == 1


async def test_unreachable_or_malformed_database_urls_are_clear_errors(tmp_path: Path):
    missing = f"postgresql://oneword:s3cret@/postgres?host={tmp_path / 'no-server'}"
    with pytest.raises(DatabaseUnavailable) as raised:
        await Storage.open(tmp_path / "d", database_url=missing, busy_timeout_s=0.5)
    assert "s3cret" not in str(raised.value)
    with pytest.raises(InvalidArgument, match="postgresql://"):
        await Storage.open(tmp_path / "d", database_url="mysql://localhost/oneword")


async def test_bot_state_entries_are_written_replaced_and_dropped(store: Storage) -> None:
    assert await store.bot_state.load("conversation:learn") == {}
    await store.bot_state.put("conversation:learn", "12:34", {"state": 1})
    await store.bot_state.put("conversation:learn", "12:34", {"state": 2})
    await store.bot_state.put("user_data", "34", {"learn": {"12": {"name": "crumb"}}})
    assert await store.bot_state.load("conversation:learn") == {"12:34": {"state": 2}}
    assert await store.bot_state.load("user_data") == {"34": {"learn": {"12": {"name": "crumb"}}}}
    await store.bot_state.drop("conversation:learn", "12:34")
    await store.bot_state.drop("conversation:learn", "12:34")
    assert await store.bot_state.load("conversation:learn") == {}


async def test_delivered_jobs_keep_their_status_message_until_it_is_cleared(store: Storage):
    queued = await store.jobs.enqueue("edit", chat_id=ALICE_DM, user_id=ALICE,
                                      status_message_id=5)
    job = await store.jobs.claim_next("w1")
    assert job is not None and job.id == queued.job.id
    await store.jobs.complete(job.id, "w1", {})
    assert await store.jobs.delivered_with_status() == []  # not delivered yet
    await store.jobs.mark_delivered(job.id)
    assert [j.id for j in await store.jobs.delivered_with_status()] == [job.id]
    await store.jobs.set_status_message(job.id, None)
    assert await store.jobs.delivered_with_status() == []
