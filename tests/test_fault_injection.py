"""A randomized, seeded, bounded fault test: users learn words and edit photos while the bot and
the worker are killed with SIGKILL at random moments. Every job must be delivered exactly once
and the database must end consistent.

Users behave as people do when a bot goes quiet: a request that got no answer at all (the bot
died before it was handled; the Bot API counts a fetched update as received) is sent again.

One resend is the Bot API's and no bug: a bot killed after Telegram took a result but before it
recorded the delivery (milliseconds) sends that result again after its restart, since "send"
and "record" cannot be one step. The test notes, at each kill of the bot, which finished jobs
were not yet recorded as delivered; a second answer to one of those, sent after that kill, is
counted apart ("resent in the window") and allowed. Any other second answer fails the test.

Every wait ends at an event (an answer, a job row, a delivery record); the bounds only stop a
hang, and are generous because the test must pass on a machine whose cores are shared.
``python -m tests.stress`` runs it over many seeds beside CPU hogs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from botapi.client import ControlClient
from botapi.persona import Persona
from botapi.records import MessageRecord
from oneword import jobs
from playground.harness import StackProcesses
from storage import Job, JobNotFound, JobState, Storage
from tests.helpers import SCENE, killed_at_exit, sample

SEED = int(os.environ.get("FAULT_SEED", "1212"))  # another seed: another run of faults
JOBS = 20  # learn and edit requests, spread over USERS people
LEARNS = 6
USERS = 4
KILLS = 8  # half the bot, half the worker, in a seeded order
KILL_GAP_S = (3.0, 8.0)  # seeded pause before each kill
ANSWER_S = 25.0  # a request without any answer after this is sent again
RESULT_S = 900.0  # bound: every job must be answered within this

pytestmark = pytest.mark.slow


@pytest.fixture
async def stack(tiny_model_dir, tmp_path) -> AsyncIterator[tuple[StackProcesses, ControlClient]]:
    async with killed_at_exit(tiny_model_dir, tmp_path / "data", ONEWORD_MAX_ATTEMPTS="20",
                              ONEWORD_MAX_CONCURRENT_JOBS="10") as running:
        yield running


class Chaos:
    """Kills the bot or the worker after seeded pauses, restarting it at once. At each kill
    of the bot it notes the finished jobs whose delivery was not recorded yet, with the last
    message id of their chat then (see the module docstring)."""

    def __init__(self, service: StackProcesses, rng: random.Random, store: Storage,
                 tg: ControlClient) -> None:
        self.service, self.rng, self.store, self.tg = service, rng, store, tg
        self.victims = ["bot", "worker"] * (KILLS // 2)
        rng.shuffle(self.victims)
        self.kills: list[str] = []
        self.unrecorded: list[tuple[int, int]] = []  # (job id, its chat's last message id)

    async def run(self) -> None:
        for victim in self.victims:
            await asyncio.sleep(self.rng.uniform(*KILL_GAP_S))  # a seeded moment, not a wait
            self.service.kill(victim)
            if victim == "bot":
                await self.note_unrecorded()
            self.service.start(victim)
            self.kills.append(victim)

    async def note_unrecorded(self) -> None:
        """With the bot dead (nothing sends or records now), the finished jobs it may have
        sent without recording it."""
        for job in await all_jobs(self.store):
            if job.state in (JobState.DONE, JobState.FAILED) and not job.delivered:
                last = max((m.message_id for m in await self.tg.messages(job.chat_id)),
                           default=0)
                self.unrecorded.append((job.id, last))

    def resent_in_window(self, job: Job, answers: list[MessageRecord]) -> bool:
        """Two answers, the second sent after a kill that found the job unrecorded."""
        return len(answers) == 2 and any(
            job_id == job.id and answers[1].message_id > last
            for job_id, last in self.unrecorded)


async def job_for(store: Storage, request: MessageRecord) -> Job | None:
    """The job the bot queued for this request message, if any."""
    for job in await all_jobs(store):
        if job.chat_id == request.chat_id and job.reply_to_message_id == request.message_id:
            return job
    return None


async def all_jobs(store: Storage) -> list[Job]:
    found, job_id = [], 1
    while True:
        try:
            found.append(await store.jobs.get(job_id))
        except JobNotFound:
            return found
        job_id += 1


async def answered(user: Persona, after: int, match: Callable[[MessageRecord], bool],
                   timeout: float) -> MessageRecord | None:
    with contextlib.suppress(TimeoutError):
        return await user.wait_reply(match, after=after, timeout=timeout)
    return None


async def until_answered(user: Persona, send: Callable[[], Awaitable[MessageRecord]],
                         match: Callable[[MessageRecord], bool],
                         queued: Callable[[MessageRecord], Awaitable[bool]] | None = None,
                         ) -> MessageRecord:
    """Send, and send again while neither an answer came nor (``queued``) a job exists."""
    deadline = time.monotonic() + RESULT_S
    while time.monotonic() < deadline:
        request = await send()
        if await answered(user, request.message_id, match, ANSWER_S):
            return request
        if queued is not None and await queued(request):
            return request
    raise AssertionError("a request never got an answer")


def text_has(*words: str) -> Callable[[MessageRecord], bool]:
    return lambda m: any(word in (m.text or "") for word in words)


async def learn(user: Persona, store: Storage, name: str) -> None:
    """/learn, three photos one by one (each acknowledged), /done."""
    request = await until_answered(user, lambda: user.say(f"/learn {name}"),
                                   text_has("Send me"))
    got = 0
    for i in (1, 2, 3):
        await until_answered(user, lambda i=i: user.send_photo(
            sample(f"creature/creature-{i}.png")), text_has("Got "))
        got += 1
    assert got == 3

    async def queued(_: MessageRecord) -> bool:
        return await job_for(store, request) is not None

    await until_answered(user, lambda: user.say("/done"),
                         text_has("Learning", "queue", "nothing to start"), queued)
    assert await job_for(store, request) is not None


async def edit(user: Persona, store: Storage) -> None:
    """A photo captioned with an edit; sent again only if the bot never saw it."""

    async def queued(request: MessageRecord) -> bool:
        return await job_for(store, request) is not None

    await until_answered(
        user, lambda: user.send_photo(sample("scenes/scene-1.png"),
                                      caption=f"remove the star | {SCENE}"),
        text_has("Edit", "queue"), queued)


def deliveries(messages: list[MessageRecord], job: Job) -> list[MessageRecord]:
    """The bot's messages that answer this job: its result, or its failure notice."""
    own = [m for m in messages if m.reply_to_message_id == job.reply_to_message_id]
    if job.kind == jobs.JobKind.LEARN.value:
        return [m for m in own if m.photo and "I learned" in (m.text or "")]
    return [m for m in own if m.photo or "failed" in (m.text or "")]


async def settled(store: Storage, timeout: float) -> list[Job]:
    """Every job finished and delivered, its status message removed (or the state at the
    timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await all_jobs(store)
        if (all(j.state in (JobState.DONE, JobState.FAILED) and j.delivered for j in found)
                and not await store.jobs.delivered_with_status()):
            return found
        if time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def test_random_kills_lose_nothing_and_send_nothing_twice(stack, tmp_path):
    service, tg = stack
    rng = random.Random(SEED)
    plan = ["learn"] * LEARNS + ["edit"] * (JOBS - LEARNS)
    rng.shuffle(plan)
    people = [await tg.user(f"User{i}") for i in range(USERS)]
    async with await Storage.open(tmp_path / "data") as store:
        chaos = Chaos(service, random.Random(SEED + 1), store, tg)

        async def person(index: int) -> None:
            user = people[index]
            for n, kind in enumerate(plan[index::USERS]):
                if kind == "learn":
                    await learn(user, store, f"word{index}x{n}")
                else:
                    await edit(user, store)

        killing = asyncio.create_task(chaos.run())
        await asyncio.gather(*(person(i) for i in range(USERS)))
        await killing  # the kills left (bounded): each restart must not resend anything
        finished = await settled(store, RESULT_S)
        await people[0].say("/help")  # the last bot is up and has made its first passes
        await people[0].wait_reply(contains="learn", timeout=RESULT_S)

        duplicates = resent = lost = 0
        for job in finished:
            answers = deliveries(await tg.bot_messages(job.chat_id), job)
            if chaos.resent_in_window(job, answers):
                resent += 1
            else:
                duplicates += len(answers) > 1
            lost += not answers or not job.delivered
        print(f"\nfault test (seed {SEED}): kills {len(chaos.kills)} "
              f"(bot {chaos.kills.count('bot')}, worker {chaos.kills.count('worker')}), "
              f"jobs {len(finished)}, duplicates {duplicates}, lost {lost}, "
              f"resent in the window {resent}")
        assert len(chaos.kills) == KILLS and len(finished) >= JOBS
        assert (duplicates, lost) == (0, 0)
        await check_consistent(store, finished)


async def check_consistent(store: Storage, finished: list[Job]) -> None:
    """Nothing left running or half-collected, each learned word saved once by its own job,
    result files on disk."""
    assert await store.jobs.list_active() == []
    assert await store.jobs.delivered_with_status() == []  # every status message removed
    for job in finished:
        assert job.state is JobState.DONE, (job.id, job.kind, job.error)
        result: dict[str, Any] = job.result or {}
        if job.kind == jobs.JobKind.LEARN.value:
            concept = await store.concepts.get(result["concept_id"])
            assert concept.meta.get("job_id") == job.id
            assert await store.media.for_concept(concept.id)
            assert store.files.exists(concept.file_path)
        else:
            assert store.files.exists(result["image"])
    for data in (await store.bot_state.load("user_data")).values():
        assert not data.get("learn"), data  # no /learn left half-collected
    learned = [j for j in finished if j.kind == jobs.JobKind.LEARN.value]
    owners = {j.user_id for j in learned}
    assert sum([await store.concepts.count_owned(o) for o in owners]) == len(learned)
