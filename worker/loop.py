"""The worker process: lanes that claim stored jobs, run them on the engine, store the results.

Two lanes, each with its own model, so a quick edit never waits behind a long learning job:
the short lane takes edits and stickers, the long lane takes learning. Engine work runs in a
thread; the event loop meanwhile renews the job's lease with its progress and notices a
cancellation. A crash loses nothing: an unfinished job's lease runs out and it is run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from engine.errors import EngineError, MixedPhotosError, PromptError
from oneword import jobs
from oneword.health import HealthPortError, HealthServer
from oneword.metrics import ServiceMetrics
from oneword.settings import Settings
from storage import (
    Area,
    ConceptExists,
    DatabaseBusy,
    DatabaseUnavailable,
    DataGone,
    Job,
    JobCancelled,
    JobState,
    LeaseLost,
    Storage,
    StorageError,
)
from storage.jobs import LEASE_EXPIRED_ERROR
from storage.presence import CHECK_EVERY_S
from storage.stats import QueueStats
from worker.failures import failure_text

if TYPE_CHECKING:  # the model stack loads with the first model, not with this module, so a
    # lane can run on a stand-in engine (tests/queue_worker.py, bench/queue.py) in a moment
    from worker.tasks import EngineTasks

log = logging.getLogger(__name__)
RETRY_S = 2.0  # pause before looking at an unreachable queue again


@dataclass
class Progress:
    """Shared between the engine thread (writes) and the heartbeat (reads)."""

    fraction: float = 0.0
    text: str = "starting"
    stop: threading.Event = field(default_factory=threading.Event)

    def report(self, fraction: float, text: str) -> None:
        self.fraction, self.text = fraction, text


class UserFacingError(Exception):
    """A failure a retry cannot fix; its message is shown to the user."""


class LaneRunner:
    """One claim-run-store loop over some job kinds, with a model of its own."""

    def __init__(self, name: str, kinds: tuple[str, ...], storage: Storage, settings: Settings,
                 tasks: EngineTasks, metrics: ServiceMetrics | None = None):
        self.name, self.kinds = name, kinds
        self.storage, self.settings, self.tasks = storage, settings, tasks
        self.metrics = metrics or ServiceMetrics("worker")
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{name}"

    async def run_forever(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                job = await self.storage.jobs.claim_next(self.worker_id, self.kinds,
                                                         lease_s=self.settings.worker_lease)
            except (DatabaseUnavailable, DatabaseBusy) as exc:  # e.g. PostgreSQL restarting
                log.warning("%s: cannot reach the queue (%s); trying again", self.name, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), RETRY_S)
                continue
            if job is None:
                await self._idle(stopping)
                continue
            await self.run_job(job, stopping)

    async def _idle(self, stopping: asyncio.Event) -> None:
        """Wait until a job may be there (at once on PostgreSQL's notice, after a poll
        interval on SQLite) or the worker is stopping."""
        waits = [asyncio.create_task(self.storage.jobs.wait_for_work(
                     self.worker_id, self.settings.worker_poll)),
                 asyncio.create_task(stopping.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    async def run_job(self, job: Job, stopping: asyncio.Event | None = None) -> None:
        """Run one claimed job to its end: done, failed (maybe retried) or cancelled; on
        shutdown (`stopping`) it is interrupted and handed back to the queue."""
        log.info("%s: job %d (%s), attempt %d", self.name, job.id, job.kind, job.attempts)
        if job.attempts == 1 and job.started_at is not None:
            self.metrics.job_started(job.kind, job.started_at - job.created_at)
        began, outcome = time.monotonic(), "failed"
        progress = Progress()
        heartbeat = asyncio.create_task(self._heartbeat(job, progress, stopping))
        try:
            result = await self._dispatch(job, progress)
            await self.storage.jobs.complete(job.id, self.worker_id, jobs.to_json(result))
            outcome = "done"
            log.info("%s: job %d done", self.name, job.id)
        except (JobCancelled, InterruptedError):
            if stopping is not None and stopping.is_set():
                with contextlib.suppress(LeaseLost):
                    await self.storage.jobs.release(job.id, self.worker_id)
                outcome = "handed_back"
                log.info("%s: job %d handed back for the next worker", self.name, job.id)
            else:
                outcome = "cancelled"
                log.info("%s: job %d cancelled", self.name, job.id)
        except LeaseLost:
            outcome = "lost"
            log.warning("%s: job %d was taken away (lease lost)", self.name, job.id)
        except PromptError as exc:  # the command cannot be done on this photo as said
            await self._fail(job, jobs.as_advice(str(exc)), retry=False)
        except (UserFacingError, EngineError) as exc:
            await self._fail(job, failure_text(exc), retry=False)
        except DataGone:
            raise  # nothing can be recorded any more: the worker stops (run_worker)
        except Exception:
            log.exception("%s: job %d failed", self.name, job.id)
            await self._fail(job, "something went wrong on our side; please try again later",
                             retry=True)
        finally:
            progress.stop.set()
            heartbeat.cancel()
            self.metrics.attempt_finished(job.kind, outcome, time.monotonic() - began)

    async def _fail(self, job: Job, message: str, retry: bool) -> None:
        self.metrics.attempt_failed(job.kind, retry)
        with contextlib.suppress(LeaseLost):
            await self.storage.jobs.fail(job.id, self.worker_id, message, retry=retry)

    async def _heartbeat(self, job: Job, progress: Progress,
                         stopping: asyncio.Event | None) -> None:
        interval = self.settings.worker_lease / 3
        while not progress.stop.is_set():
            if stopping is not None and stopping.is_set():
                progress.stop.set()  # the engine notices and stops at its next step
                return
            try:
                await self.storage.jobs.heartbeat(job.id, self.worker_id, progress.fraction,
                                                  progress.text, lease_s=self.settings.worker_lease)
            except (LeaseLost, DataGone):  # cancelled, no longer ours, or the data is gone
                progress.stop.set()
                return
            except StorageError as exc:  # locked or unreachable: a late beat, never the last
                log.warning("%s: job %d: heartbeat delayed (%s); trying again", self.name,
                            job.id, exc)
            await asyncio.sleep(min(interval, 1.0))

    async def _dispatch(self, job: Job, progress: Progress):
        if job.kind == jobs.JobKind.LEARN:
            return await self._learn(job, jobs.from_json(jobs.LearnPayload, job.payload),
                                     progress)
        if job.kind == jobs.JobKind.EDIT:
            return await self._edit(jobs.from_json(jobs.EditPayload, job.payload),
                                    progress)
        if job.kind == jobs.JobKind.STICKER:
            return await self._sticker(jobs.from_json(jobs.StickerPayload, job.payload),
                                       progress)
        if job.kind == jobs.JobKind.PACK:
            return await self._pack(jobs.from_json(jobs.PackPayload, job.payload), progress)
        raise UserFacingError(f"unknown job kind {job.kind!r}")

    async def _learn(self, job: Job, payload: jobs.LearnPayload,
                     progress: Progress) -> jobs.LearnResult:
        if job.attempts > 1 and (earlier := await self._learned_before(job, payload)):
            log.info("%s: job %d had saved concept %d before it was interrupted", self.name,
                     job.id, earlier.concept_id)
            return earlier
        files = self.storage.files
        photos = [files.resolve(path) for path in payload.photos]
        try:
            learned, preview, check = await asyncio.to_thread(
                self.tasks.learn, photos, payload.name, payload.kind, progress.report,
                progress.stop.is_set, payload.descriptions)
        except MixedPhotosError as exc:  # the bot names the photos and asks to replace them
            raise UserFacingError(jobs.MixedPhotos([i + 1 for i in exc.odd], exc.count,
                                                   list(exc.missing)).as_error()) from exc
        summary = (jobs.WordCheck(check.tries, check.alike, list(check.missing), check.blank)
                   if check is not None else None)
        concept_path = files.new_path(Area.CONCEPTS, ".safetensors")
        preview_path = files.new_path(Area.RESULTS, ".png")
        await asyncio.to_thread(self.tasks.save_concept, learned.concept,
                                files.resolve(concept_path))
        await asyncio.to_thread(_save_png, preview, files.resolve(preview_path))
        try:
            concept = await self.storage.concepts.create(
                owner_id=job.user_id, chat_id=payload.scope_chat_id, name=payload.name,
                kind=payload.kind, file_path=concept_path, base_model=self.tasks.model_id,
                num_vectors=learned.concept.num_vectors, media_ids=payload.media_ids,
                meta={"job_id": job.id, "preview": preview_path, "steps": learned.steps,
                      "warnings": learned.warnings, "seen_as": learned.start_words,
                      "check": jobs.to_json(summary) if summary is not None else None})
        except ConceptExists as exc:
            files.delete_many([concept_path, preview_path])
            earlier = await self._learned_before(job, payload)
            if earlier is not None:  # an earlier attempt of this very job saved it
                return earlier
            raise UserFacingError(f"the name '{payload.name}' was taken meanwhile") from exc
        return jobs.LearnResult(concept.id, concept_path, preview_path, learned.steps,
                                learned.warnings, learned.start_words, summary)

    async def _learned_before(self, job: Job, payload: jobs.LearnPayload
                              ) -> jobs.LearnResult | None:
        """The concept an earlier attempt of this job saved (the worker died before marking
        the job done), as that attempt's result; None if there is none. A retried job must
        find its own word instead of failing on its name."""
        concepts = await self.storage.concepts.list_visible(user_id=job.user_id,
                                                            chat_id=payload.scope_chat_id)
        for concept in concepts:
            meta = concept.meta
            if concept.scope_chat_id == payload.scope_chat_id and meta.get("job_id") == job.id:
                return jobs.LearnResult(concept.id, concept.file_path, meta.get("preview"),
                                        int(meta.get("steps", 0)),
                                        list(meta.get("warnings", [])), meta.get("seen_as"),
                                        meta.get("check"))
        return None

    async def _edit(self, payload: jobs.EditPayload,
                    progress: Progress) -> jobs.EditResult:
        photo = self.storage.files.resolve(payload.photo)
        prompt = await asyncio.to_thread(self.tasks.source_prompt, photo, payload.command)
        framing = await asyncio.to_thread(self.tasks.framing, photo, payload.command)
        stored = [await self.storage.concepts.get(concept_id)
                  for concept_id in payload.concept_ids]
        mode = self.tasks.inversion_mode(payload.command, _kind_named(stored,
                                                                      payload.command.concept))
        inversion = await self._inversion(payload.photo, payload.photo_key, prompt, framing,
                                          mode, progress)
        concept_files = [self.storage.files.resolve(concept.file_path) for concept in stored]
        outcome = await asyncio.to_thread(self.tasks.edit, photo, inversion, payload.command,
                                          concept_files, payload.seed, progress.report)
        image_path = self.storage.files.new_path(Area.RESULTS, ".png")
        maps_path = self.storage.files.new_path(Area.RESULTS, ".png")
        await asyncio.to_thread(_save_png, outcome.image, self.storage.files.resolve(image_path))
        await asyncio.to_thread(_save_png, outcome.maps, self.storage.files.resolve(maps_path))
        mask_path = None
        if outcome.mask is not None:  # where the result may differ from the photo
            mask_path = self.storage.files.new_path(Area.RESULTS, ".png")
            await asyncio.to_thread(_save_png, _mask_image(outcome.mask),
                                    self.storage.files.resolve(mask_path), 0)
        return jobs.EditResult(image_path, maps_path, outcome.prompt_edit.source,
                               outcome.prompt_edit.target, mask_path)

    async def _inversion(self, photo: str, photo_key: str, caption: str | None, framing: str,
                         mode: str, progress: Progress):
        """The photo's inversion in `mode`, from the cache when it was inverted before in that
        mode under this prompt (`caption`; None: under any) and framed the same way
        (`framing`: the centre square, or the whole frame a restyle of a photo that is not
        square needs)."""
        from engine.inversion import Inversion

        key = _cache_mode(mode, framing)
        cached = await self.storage.inversions.get(photo_key, self.tasks.model_id, key)
        if cached is not None and self.storage.files.exists(cached.path):
            try:
                inversion = Inversion.load(self.storage.files.resolve(cached.path),
                                           self.tasks.model)
                prompt = inversion.prompt
                if ((caption is None or " ".join(caption.lower().split()) == prompt)
                        and inversion.framing == framing and inversion.mode == mode):
                    progress.report(0.7, "photo already read")
                    return inversion
            except EngineError:
                log.warning("cached inversion %s unusable; inverting again", cached.path)
        inversion = await asyncio.to_thread(self.tasks.invert, self.storage.files.resolve(photo),
                                            caption, progress.report, progress.stop.is_set,
                                            framing, mode)
        path = self.storage.files.new_path(Area.INVERSIONS, ".safetensors")
        await asyncio.to_thread(inversion.save, self.storage.files.resolve(path))
        await self.storage.inversions.put(photo_key, self.tasks.model_id, key, path)
        return inversion

    async def _pack(self, payload: jobs.PackPayload, progress: Progress) -> jobs.PackResult:
        concept = await self.storage.concepts.get(payload.concept_id)
        drawn = await asyncio.to_thread(
            self.tasks.pack, self.storage.files.resolve(concept.file_path), payload.seed,
            payload.redo, progress.report)
        files = self.storage.files
        stickers = [await asyncio.to_thread(files.store_bytes, Area.RESULTS, s.webp, ".webp")
                    for s in drawn]
        emoji = [await asyncio.to_thread(files.store_bytes, Area.RESULTS, s.emoji_png, ".png")
                 for s in drawn]
        return jobs.PackResult(stickers, emoji, [s.emoji for s in drawn],
                               [s.name for s in drawn], [s.index for s in drawn])

    async def _sticker(self, payload: jobs.StickerPayload,
                       progress: Progress) -> jobs.StickerResult:
        webp = await asyncio.to_thread(self.tasks.sticker, self.storage.files.resolve(
            payload.photo), payload.caption, progress.report)
        path = self.storage.files.store_bytes(Area.RESULTS, webp, ".webp")
        return jobs.StickerResult(path)


def _kind_named(concepts: list, name: str | None) -> str | None:
    """The kind of the learned concept among `concepts` that a command's word `name` names;
    None when it names none (a word the model knows, or no word)."""
    if name is None:
        return None
    return next((c.kind for c in concepts if c.name.lower() == name.lower()), None)


def _cache_mode(mode: str, framing: str) -> str:
    """The inversion cache's mode key: the inversion mode, and a framing other than the centre
    square after it, so a whole-frame inversion (a restyle's) and a centre one (the other
    edits') of the same photo are kept apart, and entries made before framing still serve."""
    return mode if framing == "centre" else f"{mode}+{framing}"


def _mask_image(share: np.ndarray) -> Image.Image:
    """An edit's pixel shares (H, W) in [0, 1] as a black and white picture: white wherever the
    result may differ from the photo."""
    return Image.fromarray(np.where(share > 0, 255, 0).astype(np.uint8))


def _save_png(image: Image.Image, path: Path, min_side: int = 256) -> None:
    """Save a result, enlarged when a small model made it, so it reads well in a chat."""
    if min(image.size) < min_side:
        scale = -(-min_side // min(image.size))
        image = image.resize((image.width * scale, image.height * scale), Image.LANCZOS)
    tmp = path.with_suffix(".tmp")
    image.save(tmp, "PNG")
    tmp.replace(path)


def _dead_run_of_this_host(worker_id: str | None) -> bool:
    """Whether ``worker_id`` (``host-pid-lane``) names a worker process of this host that no
    longer runs: its pid is gone, or is ours (a restarted container reuses its pid)."""
    host, _, rest = (worker_id or "").rpartition("-")[0].rpartition("-")
    if host != socket.gethostname() or not rest.isdigit():
        return False
    pid = int(rest)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


async def take_back_from_dead_runs(storage: Storage) -> list[Job]:
    """Put back in the queue, now instead of when their lease ends, the jobs a killed worker
    of this host left running. The attempt counts (a job that kills its worker each time still
    ends failed) and is recorded as an expired lease, so the user hears the job continues."""
    taken: list[Job] = []
    for job in await storage.jobs.list_active():
        if job.state is JobState.RUNNING and _dead_run_of_this_host(job.worker_id):
            assert job.worker_id is not None
            with contextlib.suppress(LeaseLost, JobCancelled):
                taken.append(await storage.jobs.fail(job.id, job.worker_id,
                                                     LEASE_EXPIRED_ERROR, retry=True))
    return taken


async def run_worker(settings: Settings, stopping: asyncio.Event | None = None) -> None:
    """Open storage, load a model per lane and work until `stopping` is set. With a
    ``health_port`` it answers /livez from the start and /readyz once the models are loaded."""
    from worker.tasks import EngineTasks

    stopping = stopping or asyncio.Event()
    storage = await Storage.open(settings.data_path, database_url=settings.database_url,
                                 max_file_bytes=settings.max_file_bytes,
                                 lease_s=settings.worker_lease)
    metrics = ServiceMetrics("worker")
    lanes: list[LaneRunner] = []
    health = None
    if settings.health_port:
        health = HealthServer(settings.health_listen, settings.health_port,
                              QueueStats.of(storage), metrics,
                              extra_checks={"model": lambda: bool(lanes)})
    try:
        if health is not None:
            await health.start()
        recovered = await storage.jobs.requeue_stale()
        recovered += await take_back_from_dead_runs(storage)
        if recovered:
            log.info("recovered %d interrupted job(s)", len(recovered))
        short = await asyncio.to_thread(EngineTasks, settings)
        long = await asyncio.to_thread(EngineTasks, settings)
        lanes += [LaneRunner(jobs.Lane.SHORT, jobs.Lane.SHORT.kinds, storage, settings, short,
                             metrics),
                  LaneRunner(jobs.Lane.LONG, jobs.Lane.LONG.kinds, storage, settings, long,
                             metrics)]
        log.info("worker ready (%s database)", storage.backend)
        await asyncio.gather(*(lane.run_forever(stopping) for lane in lanes),
                             _keep_tidy(storage, settings, stopping),
                             _watch_data(storage, stopping))
    finally:
        if health is not None:
            await health.stop()
        await storage.close()


async def _watch_data(storage: Storage, stopping: asyncio.Event) -> None:
    """Raise :class:`DataGone` as soon as the data directory or the database file vanished
    or was replaced (the storage also checks before each write), so the worker stops instead
    of working for results nobody could keep."""
    while not stopping.is_set():
        storage.check_present()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), CHECK_EVERY_S)


async def _keep_tidy(storage: Storage, settings: Settings, stopping: asyncio.Event,
                     every_s: float = 3600.0) -> None:
    """Apply the retention setting now and hourly (any worker may; the work is idempotent)."""
    while not stopping.is_set():
        try:
            gone = await storage.apply_retention(settings.retention_s)
            if gone:
                log.info("retention: deleted %d old file(s)", gone)
        except Exception:
            log.exception("retention sweep failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every_s)


def main(settings: Settings) -> int:
    """Run the worker until SIGINT or SIGTERM; jobs in flight are run again by the next one."""
    import signal

    async def serve() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await run_worker(settings, stopping)

    try:
        asyncio.run(serve())
    except HealthPortError as exc:
        print(f"oneword worker: {exc}", file=sys.stderr)
        return 1
    except DataGone as exc:
        log.critical("worker stopped: %s; nothing more can be stored. Put the data directory "
                     "back (or point the worker at a new one) and start it again.", exc)
        return 1
    return 0
