"""The worker on a real SQLite file and a real (tiny) engine: learn, edit, sticker, failures,
cancellation, and a worker process killed mid-job."""

from __future__ import annotations

import asyncio
import io
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from engine.concepts import load_concept
from oneword import jobs
from oneword.grammar import parse_edit
from oneword.settings import load_settings
from storage import Area, Storage
from worker.loop import LaneRunner
from worker.tasks import EngineTasks
from world.render import render
from world.scene import Scene, random_scene, reserved_creature

USER, CHAT = 11, 11
WORLD = "a big red circle on the left with grass background"


def settings_for(model_dir: Path, data_dir: Path):
    return load_settings(environ={}, model=str(model_dir), data_dir=str(data_dir), device="cpu",
                         learn_steps=15, inversion_steps=6, worker_lease=2.0, worker_poll=0.1)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def open_storage(data_dir: Path) -> Storage:
    storage = await Storage.open(data_dir, lease_s=2.0)
    await storage.users.upsert(USER, "Ada")
    await storage.chats.upsert(CHAT, "private")
    return storage


async def enqueue_learn(storage: Storage, name: str = "mochi",
                        descriptions: list[str] | None = None) -> int:
    photos = [storage.files.store_bytes(Area.PHOTOS, png(render(Scene(
        (reserved_creature(position=p),), "sky"), size=32).image), ".png")
        for p in ("left", "center", "right", "center")]
    payload = jobs.LearnPayload(name, "object", photos, CHAT, descriptions=descriptions or [])
    queued = await storage.jobs.enqueue(jobs.JobKind.LEARN, chat_id=CHAT, user_id=USER,
                                        payload=jobs.to_json(payload))
    return queued.job.id


async def enqueue_edit(storage: Storage, command: str, concept_ids=(), seed=0) -> int:
    photo = storage.files.store_bytes(
        Area.PHOTOS, png(render(random_scene(random.Random(2)), size=32).image), ".png")
    payload = jobs.EditPayload(photo, "photo-1", parse_edit(f"{command} | {WORLD}"),
                               list(concept_ids), seed)
    queued = await storage.jobs.enqueue(jobs.JobKind.EDIT, chat_id=CHAT, user_id=USER,
                                        payload=jobs.to_json(payload))
    return queued.job.id


async def run_next(lane: LaneRunner) -> None:
    job = await lane.storage.jobs.claim_next(lane.worker_id, lane.kinds)
    assert job is not None
    await lane.run_job(job)


@pytest.fixture
async def world(tiny_model, tiny_model_dir, tmp_path):
    settings = settings_for(tiny_model_dir, tmp_path / "data")
    storage = await open_storage(settings.data_path)
    tasks = EngineTasks(settings, tiny_model)
    lanes = {lane.value: LaneRunner(lane, lane.kinds, storage, settings, tasks)
             for lane in jobs.Lane}
    yield storage, lanes
    await storage.close()


async def test_learn_then_edit_with_the_concept_then_sticker(world):
    storage, lanes = world
    learn_id = await enqueue_learn(storage)
    await run_next(lanes["long"])
    job = await storage.jobs.get(learn_id)
    assert job.state == "done", job.error
    result = jobs.from_json(jobs.LearnResult, job.result)
    concept = await storage.concepts.get_visible("MOCHI", user_id=USER, chat_id=CHAT)
    assert concept is not None and concept.id == result.concept_id
    assert load_concept(storage.files.resolve(result.concept_file)).name == "mochi"
    assert Image.open(storage.files.resolve(result.preview)).size == (256, 256)

    edit_id = await enqueue_edit(storage, "replace circle with mochi", [concept.id])
    await run_next(lanes["short"])
    job = await storage.jobs.get(edit_id)
    assert job.state == "done", job.error
    edited = jobs.from_json(jobs.EditResult, job.result)
    assert "<mochi>" in edited.target_prompt and edited.source_prompt == WORLD
    assert Image.open(storage.files.resolve(edited.image)).size == (256, 256)
    assert Image.open(storage.files.resolve(edited.maps)).width > 32

    assert await storage.inversions.count() == 1
    again = await enqueue_edit(storage, "replace circle with mochi", [concept.id], seed=3)
    await run_next(lanes["short"])
    assert (await storage.jobs.get(again)).state == "done"
    assert await storage.inversions.count() == 1  # the photo was not inverted twice

    sticker = jobs.StickerPayload(edited.image, "result-1", WORLD)
    queued = await storage.jobs.enqueue(jobs.JobKind.STICKER, chat_id=CHAT, user_id=USER,
                                        payload=jobs.to_json(sticker))
    await run_next(lanes["short"])
    job = await storage.jobs.get(queued.job.id)
    assert job.state == "done", job.error
    webp = Image.open(storage.files.resolve(job.result["sticker"]))
    assert webp.format == "WEBP" and webp.size == (512, 512)


async def test_a_replace_with_a_learned_word_is_inverted_in_the_mode_set_for_it(
        tiny_model, tiny_model_dir, tmp_path):
    from engine.inversion import Inversion

    settings = replace(settings_for(tiny_model_dir, tmp_path / "data"),
                       inversion_mode="direct", learned_replace_inversion_mode="fast")
    storage = await open_storage(settings.data_path)
    try:
        tasks = EngineTasks(settings, tiny_model)
        lanes = {lane.value: LaneRunner(lane, lane.kinds, storage, settings, tasks)
                 for lane in jobs.Lane}
        await enqueue_learn(storage)
        await run_next(lanes["long"])
        concept = await storage.concepts.get_visible("mochi", user_id=USER, chat_id=CHAT)
        assert concept is not None

        async def edited_after(command: str, concept_ids=()) -> list[str]:
            """The modes of the photo's cached inversions after the edit, which made one."""
            before = await storage.inversions.count()
            job_id = await enqueue_edit(storage, command, concept_ids)
            await run_next(lanes["short"])
            job = await storage.jobs.get(job_id)
            assert job.state == "done", job.error
            assert await storage.inversions.count() == before + 1
            modes = [m for m in ("direct", "fast", "ddim", "null-text")
                     if await storage.inversions.get("photo-1", tasks.model_id, m)]
            assert len(modes) == before + 1
            return modes

        assert await edited_after("replace circle with MOCHI", [concept.id]) == ["fast"]
        assert sorted(await edited_after("add mochi", [concept.id])) == ["direct", "fast"]
        entry = await storage.inversions.get("photo-1", tasks.model_id, "fast")
        assert Inversion.load(storage.files.resolve(entry.path), tiny_model).mode == "fast"
        for command, ids in (("remove circle", []), ("replace circle with mochi", [concept.id])):
            job_id = await enqueue_edit(storage, command, ids, seed=2)
            await run_next(lanes["short"])
            assert (await storage.jobs.get(job_id)).state == "done"
        assert await storage.inversions.count() == 2  # each mode's inversion served again
    finally:
        await storage.close()


async def test_the_senders_descriptions_reach_learning(world):
    storage, lanes = world
    vectors = []
    for name, descriptions in (("plain", []), ("described", ["", "in the sky", "", ""])):
        job_id = await enqueue_learn(storage, name, descriptions)
        await run_next(lanes["long"])
        job = await storage.jobs.get(job_id)
        assert job.state == "done", job.error
        result = jobs.from_json(jobs.LearnResult, job.result)
        vectors.append(load_concept(storage.files.resolve(result.concept_file)).vectors)
    # same photos, same seed: only the caption of the described photo differs
    assert not vectors[0].equal(vectors[1])


async def test_a_subject_not_in_the_photo_fails_at_once_with_advice(world):
    storage, lanes = world
    editor = lanes["short"].tasks.editor
    # however the random model's attention falls, "horse" finds nothing in the photo here
    editor.edit_settings = replace(editor.edit_settings, subject_min_focus=1.01)
    job_id = await enqueue_edit(storage, "replace horse with star")
    await run_next(lanes["short"])
    job = await storage.jobs.get(job_id)
    assert job.state == "failed" and job.attempts == 1  # not retried: a retry cannot help
    advice = jobs.advice_in(job.error)
    assert advice is not None and advice.startswith("I can't find a horse in this photo")
    assert "caption" not in advice and "prompt" not in advice  # no internals


async def test_cancelled_learning_stops_and_stores_nothing(world):
    storage, lanes = world
    job_id = await enqueue_learn(storage)
    job = await storage.jobs.claim_next(lanes["long"].worker_id, lanes["long"].kinds)
    await storage.jobs.cancel(job_id, user_id=USER)
    await lanes["long"].run_job(job)
    assert (await storage.jobs.get(job_id)).state == "cancelled"
    assert await storage.concepts.count_owned(USER) == 0


@pytest.mark.slow  # starts processes or runs a whole pipeline
def test_a_killed_worker_process_is_replaced_and_the_job_completes(tiny_model_dir, tmp_path):
    data = tmp_path / "data"

    async def setup() -> int:
        storage = await open_storage(data)
        try:
            return await enqueue_learn(storage)
        finally:
            await storage.close()

    async def state() -> tuple[str, float, int]:
        storage = await Storage.open(data)
        try:
            job = await storage.jobs.get(job_id)
            return job.state, job.progress, job.attempts
        finally:
            await storage.close()

    job_id = asyncio.run(setup())
    env = {**os.environ, "ONEWORD_MODEL": str(tiny_model_dir), "ONEWORD_DATA_DIR": str(data),
           "ONEWORD_DEVICE": "cpu", "ONEWORD_LEARN_STEPS": "400", "ONEWORD_WORKER_LEASE": "2",
           "ONEWORD_WORKER_POLL": "0.1", "ONEWORD_INVERSION_STEPS": "6"}
    first = subprocess.Popen([sys.executable, "-m", "worker"], env=env)
    try:
        deadline = time.time() + 120
        while asyncio.run(state())[1] <= 0.05 and time.time() < deadline:
            time.sleep(0.3)
        assert asyncio.run(state())[0] == "running"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    env["ONEWORD_LEARN_STEPS"] = "20"
    second = subprocess.Popen([sys.executable, "-m", "worker"], env=env)
    try:
        deadline = time.time() + 180
        while asyncio.run(state())[0] != "done" and time.time() < deadline:
            time.sleep(0.3)
        final_state, _, attempts = asyncio.run(state())
        assert final_state == "done" and attempts == 2
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
