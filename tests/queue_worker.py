"""A worker process for the scale-out tests: the real worker lane (claims, leases, heartbeats,
results, files through the database) with a stand-in engine that turns a photo into a
"sticker" at once, so the queue is tested, not the model.

    python -m tests.queue_worker DATABASE_URL DATA_DIR LOG [--stall-at N]

Each sticker it starts appends the photo's path to LOG (before the work); with ``--stall-at N``
the N-th job hangs until the process is killed, so a test can kill it mid-job.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from oneword import jobs
from oneword.settings import load_settings
from storage import Storage
from worker.loop import LaneRunner

WORK_S = 0.05  # a little work per job, so both workers get their share


class StickerStandIn:
    """The part of `worker.tasks.EngineTasks` a sticker job uses, without a model."""

    model_id = "stand-in"

    def __init__(self, root: Path, log: Path, stall_at: int | None) -> None:
        self.root, self.log, self.stall_at = root, log, stall_at
        self.started = 0

    def sticker(self, photo: Path, caption: str | None, report) -> bytes:
        self.started += 1
        with self.log.open("a") as out:
            out.write(f"{photo.relative_to(self.root)}\n")
        if self.started == self.stall_at:
            time.sleep(3600)  # hangs mid-job until killed
        report(0.5, "working")
        time.sleep(WORK_S)
        return b"sticker:" + photo.read_bytes()


async def serve(url: str, data_dir: Path, log: Path, stall_at: int | None) -> None:
    settings = load_settings(environ={}, database_url=url, data_dir=str(data_dir),
                             worker_lease=2.0, worker_poll=0.1)
    storage = await Storage.open(data_dir, database_url=url, lease_s=settings.worker_lease)
    try:
        tasks = StickerStandIn(storage.files.root, log, stall_at)
        lane = LaneRunner("short", (jobs.JobKind.STICKER,), storage, settings, tasks)  # type: ignore[arg-type]
        await lane.run_forever(asyncio.Event())
    finally:
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("--stall-at", type=int)
    args = parser.parse_args()
    asyncio.run(serve(args.url, args.data_dir, args.log, args.stall_at))


if __name__ == "__main__":
    main()
