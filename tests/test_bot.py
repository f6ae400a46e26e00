"""The Telegram bot (``bot/``) end to end: the real Application long-polling our local Bot API
server (``botapi``), a real SQLite data directory in ``tmp_path``, and users played through
the control API.

The engine worker is not part of these tests: :class:`StandInWorker` (test-only) claims jobs
from the same storage, reports progress and completes them with small Pillow-made pictures,
which drives the bot's delivery path exactly as the real worker would.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot import buttons
from bot.app import running
from botapi import BotApiServer, ControlClient
from botapi.persona import Persona
from botapi.records import MessageRecord
from oneword import jobs
from oneword.grammar import EditAction, EditCommand
from oneword.settings import Settings
from storage import Area, Job, JobState, Storage, StoredConcept
from tests.helpers import BOT_USERNAME, TUNING

# ------------------------------------------------------------------------------ pictures


def picture(width: int = 320, height: int = 240, fmt: str = "JPEG",
            color: tuple[int, int, int] = (180, 60, 40)) -> bytes:
    """A real encoded still image."""
    out = io.BytesIO()
    Image.new("RGBA" if fmt in ("PNG", "WEBP") else "RGB", (width, height),
              (*color, 255) if fmt in ("PNG", "WEBP") else color).save(out, fmt)
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    frames = [Image.new("P", (80, 60), i) for i in range(3)]
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def same_picture(a: bytes, b: bytes) -> bool:
    """Same size and colour (Telegram re-encodes photos the bot sends as JPEG)."""
    with Image.open(io.BytesIO(a)) as first, Image.open(io.BytesIO(b)) as second:
        if first.size != second.size:
            return False
        pa = first.convert("RGB").getpixel((first.width // 2, first.height // 2))
        pb = second.convert("RGB").getpixel((second.width // 2, second.height // 2))
        return all(abs(x - y) <= 8 for x, y in zip(pa, pb, strict=True))


def decodes(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
    return True


# ---------------------------------------------------------------- test-only stand-in worker


class StandInWorker:
    """TEST-ONLY stand-in for the engine worker process: claims jobs from the storage,
    heartbeats progress and completes or fails them with tiny real images."""

    worker_id = "test-stand-in"

    def __init__(self, store: Storage) -> None:
        self.store = store

    async def claim(self, kind: str, timeout: float = 10.0) -> Job:
        """Wait until the bot queued a job of ``kind`` and take it."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.store.jobs.claim_next(self.worker_id, [kind], lease_s=60)
            if job is not None:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {kind} job was queued within {timeout}s")
            await asyncio.sleep(0.05)

    async def progress(self, job: Job, fraction: float, text: str = "") -> Job:
        return await self.store.jobs.heartbeat(job.id, self.worker_id, fraction, text)

    def _result_file(self, data: bytes, suffix: str) -> str:
        return self.store.files.store_bytes(Area.RESULTS, data, suffix)

    async def finish_edit(self, job: Job) -> tuple[Job, bytes, bytes]:
        image, maps = picture(256, 256, "PNG", (10, 200, 10)), picture(512, 128, "PNG")
        result = jobs.EditResult(self._result_file(image, ".png"),
                                 self._result_file(maps, ".png"),
                                 "a photo of a dog", "a photo of a <mochi> <mochi>_1")
        done = await self.store.jobs.complete(job.id, self.worker_id, jobs.to_json(result))
        return done, image, maps

    async def finish_sticker(self, job: Job) -> Job:
        webp = picture(512, 512, "WEBP", (250, 250, 0))
        result = jobs.StickerResult(self._result_file(webp, ".webp"))
        return await self.store.jobs.complete(job.id, self.worker_id, jobs.to_json(result))

    async def finish_learn(self, job: Job) -> Job:
        payload = jobs.from_json(jobs.LearnPayload, job.payload)
        file_path = self.store.files.store_bytes(Area.CONCEPTS, b"embedding", ".safetensors")
        concept = await self.store.concepts.create(
            owner_id=job.user_id, chat_id=payload.scope_chat_id, name=payload.name,
            kind=payload.kind, file_path=file_path, base_model="stand-in")
        preview = self._result_file(picture(256, 256, "PNG", (0, 0, 200)), ".png")
        result = jobs.LearnResult(concept.id, file_path, preview, steps=12)
        return await self.store.jobs.complete(job.id, self.worker_id, jobs.to_json(result))

    async def fail(self, job: Job, error: str, retry: bool = False) -> Job:
        return await self.store.jobs.fail(job.id, self.worker_id, error, retry=retry)


async def add_concept(store: Storage, *, owner: int, chat_id: int, name: str,
                      chat_type: str = "private", owner_name: str = "Someone") -> StoredConcept:
    """A learned concept, as the worker would record it."""
    await store.users.upsert(owner, owner_name)
    await store.chats.upsert(chat_id, chat_type, "")
    path = store.files.store_bytes(Area.CONCEPTS, b"embedding", ".safetensors")
    return await store.concepts.create(owner_id=owner, chat_id=chat_id, name=name,
                                       kind="object", file_path=path, base_model="stand-in")


# -------------------------------------------------------------------------------- fixtures


@pytest.fixture
async def server() -> AsyncIterator[BotApiServer]:
    async with BotApiServer(bot_username=BOT_USERNAME) as srv:
        yield srv


@pytest.fixture
def make_settings(server: BotApiServer, tmp_path: Any) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = dict(
            token=server.token, data_dir=str(tmp_path / "data"), base_url=server.base_url,
            base_file_url=server.base_file_url, group_edit_interval=1.0,
            private_edit_interval=0.3, max_concurrent_jobs=5, max_attempts=2)
        values.update(overrides)
        return Settings(**values)
    return make


def bot_running(settings: Settings) -> contextlib.AbstractAsyncContextManager[Any]:
    return running(settings, TUNING, poll_timeout=1)


@pytest.fixture
async def bot(make_settings: Callable[..., Settings]) -> AsyncIterator[Any]:
    async with bot_running(make_settings()) as app:
        yield app


@pytest.fixture
async def worker(tmp_path: Any) -> AsyncIterator[StandInWorker]:
    store = await Storage.open(tmp_path / "data")
    try:
        yield StandInWorker(store)
    finally:
        await store.close()


async def wait_for_message(tg: ControlClient, chat_id: int, predicate: Callable[[Any], bool],
                           timeout: float = 10.0) -> MessageRecord:
    """Any message of the chat (deleted ones too) matching ``predicate``."""
    async def probe() -> tuple[int, Any]:
        version = (await tg.stats())["version"]
        found = [m for m in await tg.messages(chat_id) if predicate(m)]
        return version, found[0] if found else None
    return await tg.wait_until(probe, timeout)


async def status_removed(tg: ControlClient, chat_id: int, message_id: int) -> bool:
    """Whether the status message gets deleted (the bot does so right after recording the
    delivery)."""
    found = await wait_for_message(
        tg, chat_id, lambda m: m.message_id == message_id and m.deleted)
    return found.deleted


async def is_delivered(store: Storage, job_id: int, timeout: float = 5.0) -> bool:
    """Whether the bot marks the job delivered within ``timeout`` (it does so right after
    answering the chat)."""
    deadline = time.monotonic() + timeout
    while not (await store.jobs.get(job_id)).delivered:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def group_with(tg: ControlClient, *people: Persona, privacy: bool = True) -> int:
    await tg.set_privacy_mode(privacy)
    group = await tg.create_group("Friends", [p.id for p in people],
                                  admin_ids=[people[0].id])
    return group["id"]


# -------------------------------------------------------------------------- pure buttons


def test_button_data_round_trips() -> None:
    assert buttons.parse(buttons.data(buttons.WHY, 2**40)) == ("why", 2**40)
    assert buttons.parse("evil:1") is None and len(buttons.data(buttons.AGAIN, 10**17)) < 64


# ------------------------------------------------------------------------ start and help


async def test_start_help_and_command_menus(bot: Any, tg: ControlClient) -> None:
    alice = await tg.user("Alice")
    await alice.say("/start")
    welcome = await alice.wait_reply(contains="OneWord")
    assert welcome.text.startswith("Hi Alice!") and "/learn" in welcome.text
    await alice.say("/help")
    help_text = (await alice.wait_reply(contains="How to use")).text
    assert "replace dog with mochi | a photo of a dog on a sofa" in help_text
    assert "/sticker" in help_text and "/share" in help_text
    menus = {entry["scope"]["type"]: [c["command"] for c in entry["commands"]]
             for entry in await tg.commands()}
    assert "learn" in menus["all_private_chats"] and "replace" in menus["all_group_chats"]
    await alice.say("what's up?")
    assert "didn't get that" in (await alice.wait_reply()).text


# ------------------------------------------------------------------------------ learning


async def test_learn_album_of_four_queues_job(bot: Any, tg: ControlClient,
                                              worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    learn = await alice.say("/learn Mochi")
    assert "Send me 3-5 photos" in (await alice.wait_reply()).text
    album = await alice.send_album([picture(color=(i * 50, 20, 20)) for i in range(4)])
    status = await alice.wait_reply(contains="queue")
    assert "you're next" in status.text and status.reply_to_message_id == learn.message_id
    job = await worker.claim("learn")
    payload = jobs.from_json(jobs.LearnPayload, job.payload)
    assert (payload.name, payload.kind, payload.scope_chat_id) == ("Mochi", "object", alice.id)
    assert len(payload.photos) == 4 and len(set(payload.photos)) == 4
    for path in payload.photos:
        assert path.startswith("photos/") and decodes(worker.store.files.read_bytes(path))
    sent = {bytes(await tg.download(m.photo_file_id)) for m in album}
    assert {worker.store.files.read_bytes(p) for p in payload.photos} == sent
    assert len(set(payload.media_ids)) == 4  # deleted with the concept by /forget
    for _ in range(100):  # the bot records its status message just after sending it
        job = await worker.store.jobs.get(job.id)
        if job.status_message_id is not None:
            break
        await asyncio.sleep(0.05)
    assert job.status_message_id == status.message_id
    assert job.reply_to_message_id == learn.message_id and job.max_attempts == 2
    # the album was answered once, by the status message
    assert [m.message_id for m in await tg.bot_messages(alice.id, after=album[-1].message_id)] \
        == [status.message_id]


async def test_learn_one_by_one_then_done(bot: Any, tg: ControlClient,
                                          worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    await alice.say("/learn rex person")
    await alice.wait_reply(contains="(person)")
    await alice.say("/done")
    assert "Got 0 photos. Send at least 3 more" in (await alice.wait_reply()).text
    await alice.send_photo(picture())
    assert "Got 1 photo." in (await alice.wait_reply()).text
    await alice.send_photo(picture(color=(1, 2, 3)), caption="  on a  beach\nat dusk ")
    assert "at least 1 more" in (await alice.wait_reply()).text
    await alice.send_photo(picture(color=(9, 9, 9)))
    assert "/done" in (await alice.wait_reply(contains="Got 3")).text
    await alice.say("/done")
    await alice.wait_reply(contains="you're next")
    job = await worker.claim("learn")
    assert job.payload["kind"] == "person" and len(job.payload["photos"]) == 3
    # a photo's caption says what else it shows; learning reads it beside that photo
    assert job.payload["descriptions"] == ["", "on a beach at dusk", ""]


async def test_learn_from_image_documents_starts_at_five(bot: Any, tg: ControlClient,
                                                         worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    await alice.say("/learn inkwash style")
    await alice.wait_reply(contains="Send me")
    files = [(picture(300, 200, "PNG"), "a.png", "image/png"),
             (picture(200, 300, "WEBP"), "b.webp", "image/webp"),
             (picture(), "c.jpg", "image/jpeg"),
             (picture(400, 300, "PNG", (1, 1, 1)), "d.png", "image/png")]
    for data, name, mime in files:
        await alice.send_document(data, name, mime)
        await alice.wait_reply(contains="Got")
    await alice.send_photo(picture(color=(0, 90, 0)))  # the fifth starts learning by itself
    await alice.wait_reply(contains="you're next")
    job = await worker.claim("learn")
    suffixes = sorted(p.rsplit(".", 1)[1] for p in job.payload["photos"])
    assert suffixes == ["jpg", "jpg", "png", "png", "webp"] and job.payload["kind"] == "style"
    await worker.finish_learn(job)
    preview = await alice.wait_reply(photo=True)
    assert 'caption "restyle as inkwash"' in preview.text  # a style: the suggested try restyles


async def test_learn_refuses_bad_and_taken_names(bot: Any, tg: ControlClient,
                                                 worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    await add_concept(worker.store, owner=alice.id, chat_id=alice.id, name="mochi")
    cases = {
        "/learn": "Tell me the new word",
        "/learn bad/name": "letters a-z, digits",
        f"/learn {'x' * 40}": "at most 32 characters",
        "/learn rex animal": "isn't a kind I know",
        "/learn мочи": "letters a-z, digits",
        "/learn MOCHI": "There's already a \"MOCHI\"",
    }
    for command, expected in cases.items():
        await alice.say(command)
        assert expected in (await alice.wait_reply()).text, command
    await alice.send_photo(picture(), caption="add 猫咪")  # the same rule, not "/learn 猫咪"
    refusal = (await alice.wait_reply()).text
    assert "letters a-z, digits" in refusal and "/learn" not in refusal
    await alice.send_photo(picture())  # no session was opened
    assert "Nice photo" in (await alice.wait_reply()).text
    assert await worker.store.jobs.queue_length() == 0
    # a name being learned right now is taken too
    await alice.say("/learn rex")
    await alice.wait_reply(contains="Send me")
    await alice.send_album([picture(), picture(), picture()])
    await alice.wait_reply(contains="queue")
    await alice.say("/learn Rex")
    assert "already learning" in (await alice.wait_reply()).text


async def test_learn_refuses_non_images_gifs_and_oversize(bot: Any, tg: ControlClient,
                                                          worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    await alice.say("/learn mochi")
    await alice.wait_reply(contains="Send me")
    await alice.send_document(b"just some notes", "notes.txt", "text/plain")
    assert "isn't a picture" in (await alice.wait_reply()).text
    await alice.send_document(gif(), "fun.gif", "image/gif")
    assert "GIFs don't work" in (await alice.wait_reply()).text
    await alice.send_document(b"\xff\xd8" + b"x" * (20 * 2**20), "huge.jpg", "image/jpeg")
    assert "too big" in (await alice.wait_reply()).text
    damaged = picture(300, 300, "PNG", (7, 8, 9))
    await alice.send_document(damaged[: len(damaged) // 2], "fake.png", "image/png")
    refused = await alice.wait_reply()  # looks fine until downloaded: checked on arrival
    assert "couldn't open that picture" in refused.text and "Got 0 photos" in refused.text
    for i in range(3):
        await alice.send_photo(picture(color=(i, 100, 100)))
        assert f"Got {i + 1} photo" in (await alice.wait_reply(contains="Got")).text
    await alice.say("/done")
    await alice.wait_reply(contains="you're next")
    job = await worker.claim("learn")
    assert len(job.payload["photos"]) == 3


async def test_group_learn_progress_and_preview(bot: Any, tg: ControlClient,
                                               worker: StandInWorker) -> None:
    alice, bob = await tg.user("Alice"), await tg.user("Bob")
    group_id = await group_with(tg, alice, bob)  # privacy mode on: photos must be replies
    in_group = alice.in_chat(group_id)
    learn = await in_group.say(f"/learn@{BOT_USERNAME} rex")
    prompt = await in_group.wait_reply(contains="Reply to this message")
    assert prompt.reply_keyboard["force_reply"] is True and prompt.reply_keyboard["selective"]
    album = await tg.send_album(group_id, alice.id, [picture(color=(i, 0, 0)) for i in range(3)],
                                reply_to=prompt.message_id)
    assert all(m.delivered for m in album)
    status = await in_group.wait_reply(contains="you're next")
    job = await worker.claim("learn")
    assert job.payload["scope_chat_id"] == group_id and len(job.payload["photos"]) == 3
    await worker.progress(job, 0.5, "learning: step 6 of 12")
    shown = await tg.wait_for(group_id, contains="50%", timeout=5)
    assert shown.message_id == status.message_id and "step 6 of 12" in shown.text
    await worker.finish_learn(job)
    preview = await tg.wait_for(group_id, photo=True)
    assert preview.text.startswith("I learned \"rex\" (12 steps)")
    assert 'caption "add rex"' in preview.text  # a thing: the suggested try adds it
    assert preview.reply_to_message_id == learn.message_id
    bob_g = bob.in_chat(group_id)
    await bob_g.say("/concepts")  # a word of the group: everyone here may use it
    assert "- rex (object, this group's)" in (await bob_g.wait_reply()).text
    await bob.say("/concepts")  # ...and nobody elsewhere
    assert "rex" not in (await bob.wait_reply()).text


# ------------------------------------------------------------------------------- editing


def edit_of(job: Job) -> jobs.EditPayload:
    """The typed payload of an edit job, as the worker reads it."""
    return jobs.from_json(jobs.EditPayload, job.payload)


async def test_private_caption_and_reply_edits(bot: Any, tg: ControlClient,
                                               worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    mochi = await add_concept(worker.store, owner=alice.id, chat_id=alice.id, name="mochi")
    sent = await alice.send_photo(picture(640, 480),
                                  caption="replace the dog with Mochi | a photo of a dog on a sofa")
    status = await alice.wait_reply(contains="you're next")
    assert status.reply_to_message_id == sent.message_id
    job = await worker.claim("edit")
    payload = jobs.from_json(jobs.EditPayload, job.payload)
    assert payload.command == EditCommand(EditAction.REPLACE, concept="mochi", subject="dog",
                                          caption="a photo of a dog on a sofa")
    assert payload.concept_ids == [mochi.id] and payload.seed == 0
    assert payload.photo_key == sent.photo[-1]["file_unique_id"]
    assert worker.store.files.read_bytes(payload.photo) == await tg.download(sent.photo_file_id)
    assert (job.chat_id, job.user_id, job.reply_to_message_id) == (alice.id, alice.id,
                                                                   sent.message_id)

    photo = await alice.send_photo(picture(color=(5, 5, 200)))
    assert "Nice photo" in (await alice.wait_reply()).text
    await alice.say("add mochi on the left", reply_to=photo)
    await alice.wait_reply(contains="queue")
    second = await worker.claim("edit")
    assert edit_of(second).command.text == "add mochi on the left"
    assert edit_of(second).command.caption is None and edit_of(second).concept_ids == [mochi.id]
    await alice.say("add mochi")  # not a reply: which photo?
    assert "Which photo?" in (await alice.wait_reply()).text
    await alice.say("replace dog", reply_to=photo)
    assert "Replace what with what?" in (await alice.wait_reply()).text


async def test_group_replace_command_reply_with_botname(bot: Any, tg: ControlClient,
                                                        worker: StandInWorker) -> None:
    alice, bob = await tg.user("Alice"), await tg.user("Bob")
    group_id = await group_with(tg, alice, bob)
    rex = await add_concept(worker.store, owner=bob.id, chat_id=group_id, name="rex",
                            chat_type="supergroup")
    in_group = alice.in_chat(group_id)
    photo = await in_group.send_photo(picture())
    assert not photo.delivered  # privacy mode: the bot never saw the photo itself
    await in_group.say(f"/replace@{BOT_USERNAME} cat with rex | a cat on a mat", reply_to=photo)
    await in_group.wait_reply(contains="you're next")
    job = await worker.claim("edit")
    assert job.chat_id == group_id and job.user_id == alice.id
    assert edit_of(job).command.text == "replace cat with rex"
    assert edit_of(job).command.caption == "a cat on a mat" and edit_of(job).concept_ids == [rex.id]
    assert job.payload["photo_key"] == photo.photo[-1]["file_unique_id"]

    await in_group.send_photo(picture(color=(0, 0, 0)), caption="/add rex")
    await in_group.wait_reply(contains="queue")
    captioned = await worker.claim("edit")
    assert edit_of(captioned).command.text == "add rex"
    await in_group.say("/replace@some_other_bot cat with rex", reply_to=photo)
    await in_group.say("/status")
    status = (await in_group.wait_reply()).text
    assert status.count("Edit") == 2 and 'Edit "replace cat with rex"' in status
    assert await worker.store.jobs.queue_length() == 0  # the other bot's command was ignored


async def test_unknown_and_private_concepts_are_refused(bot: Any, tg: ControlClient,
                                                       worker: StandInWorker) -> None:
    alice, bob = await tg.user("Alice"), await tg.user("Bob")
    await add_concept(worker.store, owner=bob.id, chat_id=bob.id, name="secret")
    await add_concept(worker.store, owner=alice.id, chat_id=alice.id, name="mine")
    await alice.send_photo(picture(), caption="add secret")
    refused = (await alice.wait_reply()).text
    assert "I don't know \"secret\"" in refused and "mine" in refused and "/concepts" in refused
    group_id = await group_with(tg, alice, bob)
    in_group = alice.in_chat(group_id)
    photo = await in_group.send_photo(picture())
    await in_group.say("/restyle as secret", reply_to=photo)
    assert "I don't know \"secret\"" in (await in_group.wait_reply()).text
    await in_group.say("/concepts")
    listed = (await in_group.wait_reply()).text
    assert "secret" not in listed and "mine (object, yours)" in listed
    assert await worker.store.jobs.queue_length() == 0


async def test_share_lets_a_group_member_use_a_private_concept(bot: Any, tg: ControlClient,
                                                               worker: StandInWorker) -> None:
    alice, bob = await tg.user("Alice"), await tg.user("Bob")
    mochi = await add_concept(worker.store, owner=bob.id, chat_id=bob.id, name="mochi")
    group_id = await group_with(tg, alice, bob)
    alice_g, bob_g = alice.in_chat(group_id), bob.in_chat(group_id)
    photo = await alice_g.send_photo(picture())
    await alice_g.say("/add mochi", reply_to=photo)
    assert "don't know" in (await alice_g.wait_reply()).text
    await alice_g.say("/share mochi")
    assert "no private word" in (await alice_g.wait_reply()).text
    await bob.say("/share mochi")
    assert "in groups" in (await bob.wait_reply()).text
    await bob_g.say(f"/share@{BOT_USERNAME} mochi")
    assert "Everyone here can now use \"mochi\"" in (await bob_g.wait_reply()).text
    await alice_g.say("/add mochi", reply_to=photo)
    await alice_g.wait_reply(contains="queue")
    job = await worker.claim("edit")
    assert job.user_id == alice.id and job.payload["concept_ids"] == [mochi.id]
    await alice_g.say("/concepts")
    assert "mochi (object, shared by Bob)" in (await alice_g.wait_reply()).text
    await alice.say("/concepts")  # not shared into alice's private chat
    assert "no words" in (await alice.wait_reply()).text


async def test_forget_deletes_concept_and_its_file(bot: Any, tg: ControlClient,
                                                   worker: StandInWorker) -> None:
    alice, bob = await tg.user("Alice"), await tg.user("Bob")
    mochi = await add_concept(worker.store, owner=alice.id, chat_id=alice.id, name="mochi")
    group_id = await group_with(tg, bob, alice)  # bob is the admin
    rex = await add_concept(worker.store, owner=alice.id, chat_id=group_id, name="rex",
                            chat_type="supergroup")
    await bob.say("/forget mochi")
    assert "I don't know" in (await bob.wait_reply()).text
    await alice.say("/forget Mochi")
    assert "I forgot \"mochi\"" in (await alice.wait_reply()).text
    assert not worker.store.files.exists(mochi.file_path)
    bob_g = bob.in_chat(group_id)
    await bob_g.say("/forget rex")  # not his, but he is the group's admin
    assert "I forgot \"rex\"" in (await bob_g.wait_reply()).text
    assert not worker.store.files.exists(rex.file_path)
    assert await worker.store.concepts.count_owned(alice.id) == 0


# ------------------------------------------------------------------------------ delivery


async def test_progress_edits_are_throttled_in_groups(bot: Any, tg: ControlClient,
                                                      worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    group_id = await group_with(tg, alice)
    await add_concept(worker.store, owner=alice.id, chat_id=alice.id, name="mochi")
    in_group = alice.in_chat(group_id)
    await in_group.send_photo(picture(), caption="/add mochi")
    status = await in_group.wait_reply(contains="queue")
    job = await worker.claim("edit")
    start = time.monotonic()
    for i in range(1, 21):  # 20 progress reports in ~3 s
        await worker.progress(job, i / 21, f"step {i}")
        await asyncio.sleep(0.15)
    elapsed = time.monotonic() - start
    await worker.finish_edit(job)
    await in_group.wait_reply(photo=True, timeout=10)
    assert await status_removed(tg, group_id, status.message_id)  # gives way to the result
    record = await tg.message(group_id, status.message_id)
    edits = [c for c in await tg.calls("editMessageText") if c["ok"]
             and c["params"].get("message_id") in (status.message_id, str(status.message_id))]
    assert record.edit_count == len(edits)
    assert 2 <= len(edits) <= elapsed / 1.0 + 1, (len(edits), elapsed)
    times = [c["time"] for c in edits]
    assert all(b - a >= 0.95 for a, b in zip(times, times[1:], strict=False)), times
    assert any("%" in text and "step" in text for text in record.texts[1:]), record.texts


async def test_edit_result_buttons_why_sticker_and_another_take(
        bot: Any, tg: ControlClient, worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    await add_concept(worker.store, owner=alice.id, chat_id=alice.id, name="mochi")
    request = await alice.send_photo(picture(), caption="add mochi")
    status = await alice.wait_reply(contains="queue")
    job, image, maps = await worker.finish_edit(await worker.claim("edit"))
    result = await alice.wait_reply(photo=True, buttons=True)
    assert result.reply_to_message_id == request.message_id
    assert same_picture(await tg.download(result.photo_file_id), image)
    assert [b["text"] for b in result.buttons] == ["Why?", "Sticker", "Another take"]
    assert all(len(b["callback_data"].encode()) <= 64 for b in result.buttons)
    assert await status_removed(tg, alice.id, status.message_id)
    assert await is_delivered(worker.store, job.id)

    query = await alice.press(result, text="Why?")
    why = await tg.wait_for(alice.id, photo=True, after=result.message_id)
    assert why.reply_to_message_id == result.message_id and "dog" in why.text
    assert '"a photo of a mochi"' in why.text and "<mochi>" not in why.text  # as people write
    assert same_picture(await tg.download(why.photo_file_id), maps)
    await tg.wait_for_answer(query["id"])

    await alice.press(result, text="Another take")
    again = await worker.claim("edit")
    assert edit_of(again).command.text == "add mochi" and edit_of(again).seed != 0
    assert again.payload["photo"] == job.payload["photo"]
    assert again.reply_to_message_id == result.message_id

    await alice.press(result, text="Sticker")
    sticker_job = await worker.claim("sticker")
    assert sticker_job.payload["photo"] == job.result["image"]
    assert sticker_job.payload["photo_key"] == result.photo[-1]["file_unique_id"]


async def test_sticker_command_and_add_to_my_set(bot: Any, tg: ControlClient,
                                                 worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    photo = await alice.send_photo(picture())
    await alice.wait_reply(contains="Nice photo")
    await alice.say("/sticker a red square", reply_to=photo)
    await alice.wait_reply(contains="Sticker: you're next")
    job = await worker.claim("sticker")
    assert job.payload["caption"] == "a red square"
    assert job.payload["photo_key"] == photo.photo[-1]["file_unique_id"]
    await worker.finish_sticker(job)
    sticker = await alice.wait_reply(sticker=True)
    assert [b["text"] for b in sticker.buttons] == ["Add to my set"]
    assert (sticker.sticker["width"], sticker.sticker["height"]) == (512, 512)

    await alice.press(sticker, text="Add to my set")
    made = await alice.wait_reply(contains="made you a sticker set")
    name = f"oneword_{alice.id}_by_{BOT_USERNAME}"
    assert name in made.text
    await alice.press(sticker, text="Add to my set")
    await tg.wait_for(alice.id, contains="Added to your sticker set", after=made.message_id)
    (sticker_set,) = await tg.sticker_sets()
    assert sticker_set["name"] == name and len(sticker_set["stickers"]) == 2
    assert sticker_set["owner_id"] == alice.id


def pack_of(job: Job) -> jobs.PackPayload:
    """The typed payload of a pack job, as the worker reads it."""
    return jobs.from_json(jobs.PackPayload, job.payload)


async def test_a_bare_pack_reply_takes_the_word_the_message_names(
        bot: Any, tg: ControlClient, worker: StandInWorker) -> None:
    alice, bob = await tg.user("Alice"), await tg.user("Bob")
    await alice.say("/learn Mochi")
    await alice.wait_reply(contains="Send me")
    await alice.send_album([picture(color=(i * 50, 20, 20)) for i in range(3)])
    await alice.wait_reply(contains="queue")
    await worker.finish_learn(await worker.claim("learn"))
    learned = await alice.wait_reply(photo=True)
    assert learned.text.startswith('I learned "Mochi"')
    request = await alice.say("/pack", reply_to=learned)  # the bot's own "I learned" message
    await alice.wait_reply(contains="queue")
    job = await worker.claim("pack")
    assert pack_of(job).word == "Mochi" and job.reply_to_message_id == request.message_id

    group_id = await group_with(tg, alice, bob)  # privacy mode: the bot sees no plain chat
    alice_g, bob_g = alice.in_chat(group_id), bob.in_chat(group_id)
    rex = await add_concept(worker.store, owner=bob.id, chat_id=group_id, name="rex",
                            chat_type="supergroup")
    await worker.store.concepts.create(
        owner_id=bob.id, chat_id=group_id, name="inkwash", kind="style", base_model="stand-in",
        file_path=worker.store.files.store_bytes(Area.CONCEPTS, b"style", ".safetensors"))
    await alice_g.say("/share mochi")
    await alice_g.wait_reply(contains="can now use")
    plain = await bob_g.say("what a sunny day")
    assert not plain.delivered
    await alice_g.say("/pack", reply_to=plain)
    nothing = (await alice_g.wait_reply()).text
    assert "don't see a word you taught me" in nothing and "Mochi, rex" in nothing
    both = await bob_g.say("mochi and REX are friends")
    await alice_g.say(f"/pack@{BOT_USERNAME}", reply_to=both)
    assert "names 2 of your words (Mochi, rex). Which one?" in (await alice_g.wait_reply()).text
    styled = await bob_g.say("restyle as inkwash")
    await alice_g.say("/pack", reply_to=styled)
    assert '"inkwash" is a style' in (await alice_g.wait_reply()).text
    await alice_g.say("/pack")
    assert "Which word?" in (await alice_g.wait_reply()).text
    assert await worker.store.jobs.queue_length() == 0

    # a thing and a style named: the pack is of the thing; bob may use the word shared here
    named = await alice_g.say('look at "REX", restyled as inkwash!')
    request = await bob_g.say("/pack", reply_to=named)
    await bob_g.wait_reply(contains="queue")
    job = await worker.claim("pack")
    assert (pack_of(job).concept_id, job.chat_id, job.user_id) == (rex.id, group_id, bob.id)
    assert job.reply_to_message_id == request.message_id
    await alice_g.say("/pack mochi", reply_to=named)  # a name given: the reply is not read
    await alice_g.wait_reply(contains="queue")
    assert pack_of(await worker.claim("pack")).word == "Mochi"


async def test_edits_and_stickers_say_why_they_have_no_picture(bot: Any, tg: ControlClient,
                                                               worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    await alice.say("add mochi")
    assert "Which photo?" in (await alice.wait_reply()).text
    await alice.say("/sticker")
    assert "Reply /sticker to the photo" in (await alice.wait_reply()).text
    animation = await alice.send_document(gif(), "fun.gif", "image/gif")
    await alice.wait_reply(contains="GIFs don't work")
    await alice.say("restyle as mochi", reply_to=animation)
    assert "GIFs don't work" in (await alice.wait_reply()).text
    notes = await alice.send_document(b"just some notes", "notes.txt", "text/plain")
    await alice.wait_reply(contains="isn't a picture")
    await alice.say("/sticker", reply_to=notes)
    assert "isn't a picture" in (await alice.wait_reply()).text
    assert await worker.store.jobs.queue_length() == 0


async def test_failed_job_tells_the_user_why(bot: Any, tg: ControlClient,
                                             worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    photo = await alice.send_photo(picture())
    await alice.say("/sticker", reply_to=photo)
    status = await alice.wait_reply(contains="queue")
    first = await worker.claim("sticker")
    requeued = await worker.fail(first, "the GPU fell over", retry=True)
    assert requeued.state is JobState.QUEUED
    await tg.wait_for(alice.id, contains="trying again (attempt 2 of 2)", after=photo.message_id)
    second = await worker.claim("sticker")
    await worker.fail(second, "I can't tell what to cut out: the caption names no subject",
                      retry=True)  # no attempts left: failed
    told = await alice.wait_reply(contains="failed")
    assert told.text == ("Sorry, sticker failed (tried 2 times): I can't tell what to cut out: "
                         "the caption names no subject")
    assert await status_removed(tg, alice.id, status.message_id)


async def test_limits_get_clear_replies(make_settings: Callable[..., Settings],
                                        tg: ControlClient, worker: StandInWorker) -> None:
    settings = make_settings(max_concurrent_jobs=1, edits_per_day=2, max_concepts=1)
    alice = await tg.user("Alice")
    await add_concept(worker.store, owner=alice.id, chat_id=alice.id, name="mochi")
    async with bot_running(settings):
        await alice.say("/learn rex")
        assert "the most words I can keep for you (1)" in (await alice.wait_reply()).text
        await alice.send_photo(picture(), caption="add mochi")
        await alice.wait_reply(contains="queue")
        await alice.send_photo(picture(), caption="add mochi")
        assert "already have 1 job waiting" in (await alice.wait_reply()).text
        await worker.finish_edit(await worker.claim("edit"))
        await alice.wait_reply(photo=True)
        await alice.send_photo(picture(), caption="add mochi")
        await alice.wait_reply(contains="queue")
        await worker.finish_edit(await worker.claim("edit"))
        await alice.wait_reply(photo=True)
        await alice.send_photo(picture(), caption="add mochi")
        assert "used all 2 edits for today" in (await alice.wait_reply()).text
    assert await worker.store.usage.count(alice.id) == 2


async def test_restart_delivers_results_finished_while_down(
        make_settings: Callable[..., Settings], tg: ControlClient,
        worker: StandInWorker) -> None:
    settings = make_settings()
    alice = await tg.user("Alice")
    await add_concept(worker.store, owner=alice.id, chat_id=alice.id, name="mochi")
    async with bot_running(settings):
        await alice.send_photo(picture(), caption="add mochi")
        status = await alice.wait_reply(contains="queue")
        job = await worker.claim("edit")
    _, image, _ = await worker.finish_edit(job)  # finishes while the bot is down
    await asyncio.sleep(0.3)
    assert not await tg.bot_messages(alice.id, after=status.message_id)
    async with bot_running(settings):
        result = await alice.wait_reply(photo=True)
        assert same_picture(await tg.download(result.photo_file_id), image)
        await wait_for_message(tg, alice.id, lambda m: m.message_id == status.message_id
                               and m.deleted)
    assert await is_delivered(worker.store, job.id)


async def test_429_burst_everything_still_delivered(bot: Any, tg: ControlClient,
                                                    worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    await add_concept(worker.store, owner=alice.id, chat_id=alice.id, name="mochi")
    for i in range(3):
        await alice.send_photo(picture(color=(i, i, i)), caption="add mochi")
        await alice.wait_reply(contains="queue")
    jobs = [await worker.claim("edit") for _ in range(3)]
    await tg.force_429(4, retry_after=1)
    for job in jobs:
        await worker.finish_edit(job)
    for job in jobs:
        await tg.wait_for(alice.id, lambda m, job=job: m.reply_to_message_id
                          == job.reply_to_message_id, photo=True, timeout=30)
    stats = await tg.stats()
    assert stats["served_429"] == 4
    results = [m for m in await tg.bot_messages(alice.id) if m.photo]
    assert len(results) == 3  # each exactly once
    assert sorted(m.reply_to_message_id for m in results) == sorted(
        j.reply_to_message_id for j in jobs)
    for job in jobs:
        assert await is_delivered(worker.store, job.id)


@pytest.mark.slow  # a whole model run, or waits out a peer client's polling
async def test_a_late_answer_is_not_taken_for_a_lost_send(bot: Any, tg: ControlClient,
                                                          worker: StandInWorker) -> None:
    """Telegram busy: the result is taken at once but answered 8 s later (past PTB's default
    5 s read timeout). Sending again would post the result twice; the bot waits instead."""
    alice = await tg.user("Alice")
    await add_concept(worker.store, owner=alice.id, chat_id=alice.id, name="mochi")
    await alice.send_photo(picture(), caption="add mochi")
    await alice.wait_reply(contains="queue")
    job = await worker.claim("edit")
    await tg.slow_answers(1, 8.0, ["sendPhoto"])
    await worker.finish_edit(job)
    await tg.wait_for(alice.id, lambda m: m.reply_to_message_id == job.reply_to_message_id,
                      photo=True, timeout=30)
    deadline = time.monotonic() + 20
    while not await is_delivered(worker.store, job.id) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await is_delivered(worker.store, job.id)
    await asyncio.sleep(1.5)  # a few more delivery passes: none may send it again
    assert len([m for m in await tg.bot_messages(alice.id) if m.photo]) == 1


# ------------------------------------------------------------------- status and robustness


async def test_status_and_cancel(bot: Any, tg: ControlClient, worker: StandInWorker) -> None:
    alice = await tg.user("Alice")
    await alice.say("/cancel")
    assert "nothing running" in (await alice.wait_reply()).text
    await alice.say("/learn mochi")
    await alice.wait_reply(contains="Send me")
    await alice.say("/status")
    assert "Collecting photos for \"mochi\": 0" in (await alice.wait_reply()).text
    await alice.say("/cancel")
    assert "stopped collecting" in (await alice.wait_reply()).text
    photo = await alice.send_photo(picture())
    await alice.say("/sticker", reply_to=photo)
    status = await alice.wait_reply(contains="queue")
    await alice.say("/status")
    assert "Sticker: you're next" in (await alice.wait_reply(contains="Your jobs")).text
    await alice.say("/cancel")
    assert "cancelled: sticker" in (await alice.wait_reply()).text
    record = await tg.message(alice.id, status.message_id)
    assert record.texts[-1] == "🚫 Sticker: cancelled."
    assert await worker.store.jobs.queue_length() == 0


async def test_errors_are_reported_without_the_token(bot: Any, tg: ControlClient,
                                                     server: BotApiServer,
                                                     caplog: pytest.LogCaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    alice = await tg.user("Alice")
    store = bot.bot_data["oneword"].store

    async def broken(**_: Any) -> list[StoredConcept]:
        raise RuntimeError(f"cannot reach {server.base_url}{server.token}/getMe")

    monkeypatch.setattr(store.concepts, "list_visible", broken)
    with caplog.at_level(logging.INFO):
        await alice.say("/concepts")
        assert "something went wrong" in (await alice.wait_reply()).text
        await alice.say("/help")  # still alive
        await alice.wait_reply(contains="How to use")
    assert "RuntimeError" in caplog.text and "cannot reach" in caplog.text
    assert server.token not in caplog.text and server.token.split(":")[1] not in caplog.text


# --------------------------------------------------------------------- python -m bot


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_python_m_bot_runs_and_keeps_the_token_out_of_logs(
        mode: str, server: BotApiServer, tg: ControlClient, tmp_path: Any) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "TELEGRAM_TOKEN": server.token,
           "ONEWORD_BASE_URL": server.base_url, "ONEWORD_BASE_FILE_URL": server.base_file_url,
           "ONEWORD_DATA_DIR": str(tmp_path / "data")}
    if mode == "webhook":
        port = free_port()
        env.update(ONEWORD_WEBHOOK_URL=f"http://127.0.0.1:{port}/hooks/oneword",
                   ONEWORD_WEBHOOK_LISTEN="127.0.0.1", ONEWORD_WEBHOOK_PORT=str(port),
                   ONEWORD_WEBHOOK_SECRET="hook-secret")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=root, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        alice = await tg.user("Alice")
        await alice.say("/start")
        await alice.wait_reply(contains="OneWord", timeout=60)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), 30)
    logs = output.decode()
    assert proc.returncode == 0, logs
    assert f"{mode} mode" in logs and "ready" in logs
    assert server.token not in logs and server.token.split(":")[1] not in logs
    if mode == "webhook":
        (call,) = await tg.calls("setWebhook")
        assert call["params"]["url"] == env["ONEWORD_WEBHOOK_URL"]
        assert call["params"]["secret_token"] == "hook-secret"
