"""The job queue's throughput: jobs per second that 1, 2 and 4 worker processes claim and
complete, with a no-op engine, on SQLite and on PostgreSQL (a measure of the queue, not the
model).

Each measurement fills a fresh database with jobs, starts the worker processes, lets them
open their storage, then starts them together; each claims the next job (``claim_next``, the
short lane's kinds) and completes it at once, until the queue is empty. Throughput = jobs /
(last completion - start); the report gives the median of ``repeats`` measurements.

Also the wake-up delay: one idle worker waits for work as the real worker does
(``JobQueue.wait_for_work``: polling every ``worker_poll`` on SQLite, ``NOTIFY`` on
PostgreSQL) while jobs arrive one by one; delay = claim time - enqueue time.
PostgreSQL is the server named by ``ONEWORD_BENCH_DATABASE_URL`` (or
``ONEWORD_TEST_DATABASE_URL``), else a throwaway local one (:mod:`storage.pg_cluster`);
without PostgreSQL its rows say why they are missing.

    python -m bench --only queue          # writes bench/results/queue.md and queue.json
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

WORKER_COUNTS = (1, 2, 4)
KINDS = ("edit", "sticker")  # the short lane's kinds, in its priority order
USER = 1
WAKE_JOBS = 12  # jobs enqueued one by one for the wake-up delay


def run_queue(jobs: int, repeats: int, log: Callable[[str], None]) -> dict:
    """Measure every backend and worker count ``repeats`` times; returns the figures for the
    report (each run's, and their median)."""
    results: dict = {"jobs": jobs, "repeats": repeats, "workers": list(WORKER_COUNTS),
                     "backends": {},
                     "load_average": [round(v, 1) for v in os.getloadavg()]}
    for backend in ("sqlite", "postgresql"):
        with _database(backend) as make_url:
            if isinstance(make_url, str):  # why this backend cannot be measured
                results["backends"][backend] = {"missing": make_url}
                log(f"queue: {backend} not measured: {make_url}")
                continue
            rows = {}
            for count in WORKER_COUNTS:
                runs = [measure(make_url(), count, jobs) for _ in range(max(1, repeats))]
                rates = [run["jobs_per_second"] for run in runs]
                rows[str(count)] = {"jobs_per_second": statistics.median(rates), "runs": runs}
                log(f"queue: {backend}, {count} worker(s): {statistics.median(rates):.0f} "
                    f"jobs/s (runs: {', '.join(f'{r:.0f}' for r in rates)})")
            wake = measure_wake(make_url(), WAKE_JOBS)
            log(f"queue: {backend}, wake-up delay {1000 * wake['median_s']:.0f} ms")
            results["backends"][backend] = {"runs": rows, "wake": wake}
    return results


def measure_wake(url: str | None, jobs: int) -> dict:
    """One idle worker; ``jobs`` jobs enqueued one at a time at irregular moments; how long
    each waited before the worker claimed it (median and worst, seconds)."""
    from oneword.settings import Settings

    poll_s = Settings().worker_poll
    with tempfile.TemporaryDirectory(prefix="oneword-wake-") as folder:
        bot_dir = Path(folder) / "shared"
        asyncio.run(_fill(url, bot_dir, 0))
        worker_dir = bot_dir if url is None else Path(folder) / "worker"
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.queue", url or "", str(worker_dir), "idle",
             str(jobs), str(poll_s)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
            delays = asyncio.run(_trickle(url, bot_dir, jobs, poll_s))
            process.communicate(timeout=120)
        finally:
            process.kill()
            process.wait()
    return {"poll_s": poll_s if url is None else None, "jobs": jobs,
            "median_s": round(statistics.median(delays), 4), "max_s": round(max(delays), 4)}


async def _trickle(url: str | None, data_dir: Path, jobs: int, poll_s: float) -> list[float]:
    """Enqueue ``jobs`` jobs, each once the worker took the previous one and a pause out of
    step with its polling has passed; return each job's wait until it was claimed."""
    from storage import JobState, Storage

    async with await Storage.open(data_dir, database_url=url) as store:
        await asyncio.sleep(1.0)  # the worker is idle now
        delays = []
        for number in range(jobs):
            await asyncio.sleep(poll_s * (0.3 + 0.61 * (number % 5) / 4))
            job = (await store.jobs.enqueue(KINDS[0], chat_id=USER, user_id=USER)).job
            while (current := await store.jobs.get(job.id)).state is JobState.QUEUED:
                await asyncio.sleep(0.005)
            assert current.started_at is not None
            delays.append(current.started_at - job.created_at)
        return delays


def measure(url: str | None, workers: int, jobs: int) -> dict:
    """Fill a fresh database (``url``; None: SQLite) with ``jobs`` jobs and time ``workers``
    processes draining it."""
    with tempfile.TemporaryDirectory(prefix="oneword-queue-") as folder:
        shared = Path(folder) / "shared"  # SQLite: the one data folder of the machine
        asyncio.run(_fill(url, shared, jobs))
        processes = []
        for number in range(workers):
            data_dir = shared if url is None else Path(folder) / f"host-{number}"
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "bench.queue", url or "", str(data_dir), f"w{number}"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        try:
            for process in processes:  # each has opened its storage
                assert process.stdout is not None and process.stdout.readline() == "ready\n"
            started = time.time()
            for process in processes:
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            reports = [json.loads(p.communicate(timeout=600)[0]) for p in processes]
        finally:
            for process in processes:
                process.kill()
                process.wait()
        claimed = sum(r["claimed"] for r in reports)
        if claimed != jobs:
            raise RuntimeError(f"{claimed} jobs claimed of {jobs}")
        seconds = max(r["finished"] for r in reports) - started
        return {"seconds": round(seconds, 3), "jobs_per_second": round(jobs / seconds, 1),
                "claimed_per_worker": [r["claimed"] for r in reports]}


async def _fill(url: str | None, data_dir: Path, jobs: int) -> None:
    from storage import ChatType, Storage

    async with await Storage.open(data_dir, database_url=url) as store:
        await store.users.upsert(USER, "bench")
        await store.chats.upsert(USER, ChatType.PRIVATE)
        for number in range(jobs):
            await store.jobs.enqueue(KINDS[number % 2], chat_id=USER, user_id=USER,
                                     payload={"n": number})


async def _idle_worker(url: str | None, data_dir: Path, jobs: int, poll_s: float) -> dict:
    """The wake-up measurement's worker: wait for work like the real one, ``jobs`` times."""
    from storage import Storage

    worker_id = f"idle-{os.getpid()}"
    async with await Storage.open(data_dir, database_url=url) as store:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        claimed = 0
        while claimed < jobs:
            job = await store.jobs.claim_next(worker_id, KINDS)
            if job is None:
                await store.jobs.wait_for_work(worker_id, poll_s)
                continue
            await store.jobs.complete(job.id, worker_id, {"ok": True})
            claimed += 1
        return {"claimed": claimed}


async def _work(url: str | None, data_dir: Path, name: str) -> dict:
    """One worker process: claim and complete until the queue is empty."""
    from storage import Storage

    worker_id = f"{name}-{os.getpid()}"
    async with await Storage.open(data_dir, database_url=url) as store:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        claimed = 0
        while True:
            job = await store.jobs.claim_next(worker_id, KINDS)
            if job is None:
                if await store.jobs.queue_length(KINDS) == 0:
                    break
                continue  # the rest are being claimed by others right now
            await store.jobs.complete(job.id, worker_id, {"ok": True})  # the no-op engine
            claimed += 1
        return {"claimed": claimed, "finished": time.time()}


@contextmanager
def _database(backend: str) -> Iterator[Callable[[], str | None] | str]:
    """Yield a function giving a fresh database URL per measurement (None: SQLite), or a
    string saying why the backend cannot be measured."""
    if backend == "sqlite":
        yield lambda: None
        return
    try:
        import psycopg

        from storage.pg_cluster import ThrowawayCluster, find_bin_dir, url_with_schema
    except ImportError as exc:
        yield f"psycopg is not installed ({exc})"
        return
    given = os.environ.get("ONEWORD_BENCH_DATABASE_URL") or os.environ.get(
        "ONEWORD_TEST_DATABASE_URL")
    cluster = None
    if not given:
        if find_bin_dir() is None:
            yield "PostgreSQL not found (install Debian's postgresql package)"
            return
        cluster = ThrowawayCluster()
        given = cluster.start()
    schemas: list[str] = []

    def fresh() -> str:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(given, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        schemas.append(schema)
        return url_with_schema(given, schema)

    try:
        yield fresh
    finally:
        if cluster is not None:
            cluster.stop()
        else:
            with psycopg.connect(given, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")


def markdown_section(queue: dict) -> list[str]:
    """The report's section: jobs per second by backend and worker count."""
    lines = ["## Job queue", "",
             f"Jobs per second claimed and completed by 1, 2 and 4 worker processes with a "
             f"no-op engine, {queue['jobs']} jobs per run (half edits, half stickers, claimed "
             "in the short lane's priority order), each run on a fresh database; the median "
             f"of {queue.get('repeats', 1)} runs. SQLite: one "
             "file on this machine; PostgreSQL: a local server, each worker with a data folder "
             "of its own. A measure of the queue, not of the model. Every process shares the "
             f"machine's cores (load average {queue['load_average'][0]} when it began): "
             "read the columns as how the queue scales, not as the database's ceiling. Wake-up "
             "delay: from enqueueing a job to an idle worker claiming it (median of "
             f"{WAKE_JOBS} jobs); on SQLite the worker polls (`ONEWORD_WORKER_POLL`), on "
             "PostgreSQL a `NOTIFY` wakes it.", ""]
    header = ["database", *(f"{n} worker{'s' if n > 1 else ''}" for n in queue["workers"]),
              "idle worker's wake-up delay"]
    rows = []
    for backend, result in queue["backends"].items():
        if "missing" in result:
            rows.append([backend, *(["not measured"] * (len(queue["workers"]) + 1))])
            continue
        wake = result.get("wake")
        rows.append([backend, *(f"{result['runs'][str(n)]['jobs_per_second']:.0f} jobs/s"
                                for n in queue["workers"]),
                     f"{1000 * wake['median_s']:.0f} ms (worst {1000 * wake['max_s']:.0f})"
                     if wake else "—"])
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    missing = [f"- {b}: {r['missing']}." for b, r in queue["backends"].items() if "missing" in r]
    return lines + (["", *missing] if missing else [])


if __name__ == "__main__":  # one worker process of a measurement
    url_arg, data_arg, name_arg = sys.argv[1:4]
    if name_arg == "idle":
        report = asyncio.run(_idle_worker(url_arg or None, Path(data_arg), int(sys.argv[4]),
                                          float(sys.argv[5])))
    else:
        report = asyncio.run(_work(url_arg or None, Path(data_arg), name_arg))
    print(json.dumps(report), flush=True)
