"""The persistent job queue shared by the bot (producer) and the worker (consumer).

Life cycle (see :class:`storage.models.JobState`)::

    enqueue ──> queued ──claim_next──> running ──complete──> done
                  ^                      │  ├──fail (attempts left)──> queued (retry)
                  │                      │  ├──fail (no attempts left / retry=False)──> failed
                  ├──────── release ─────┤  └──lease expired (worker died)──> queued or failed
                  └── requeue_stale ─────┘
    queued | running ──cancel──> cancelled

Guarantees:

* **Atomic claims.** :meth:`JobQueue.claim_next` selects and marks a job inside one
  ``BEGIN IMMEDIATE`` transaction, so two workers (or two processes) never get the same job.
* **Leases.** A claim gives the worker a lease (default 120 s); :meth:`JobQueue.heartbeat`
  extends it and records progress. A job whose lease expired belonged to a crashed or hung
  worker: :meth:`JobQueue.requeue_stale` (also run by every ``claim_next``) puts it back in the
  queue, or fails it if it used up ``max_attempts`` -- a job that keeps crashing workers does not
  loop forever, and its user still gets an answer. Nothing accepted is silently dropped.
* **Ownership checks.** ``heartbeat``, ``complete``, ``fail`` and ``release`` only act on a job
  still running under the caller's ``worker_id``; otherwise they raise :class:`JobCancelled` (the
  user cancelled it: stop) or :class:`LeaseLost` (it was requeued or finished elsewhere: drop it).
  This is how a worker notices a cancel: call ``heartbeat`` regularly.
* **Delivery.** ``done`` and ``failed`` jobs stay ``delivered = False`` until the bot calls
  :meth:`JobQueue.mark_delivered` after messaging the chat; :meth:`JobQueue.undelivered` lists
  the rest, so a bot restart answers what it missed. Cancelled jobs count as delivered (the bot
  answers the cancel command itself).

* **Parallel claims on PostgreSQL.** Claims, heartbeats and completions run as concurrent
  transactions (see :mod:`storage.pg`): a claim picks its row with ``SELECT ... FOR UPDATE SKIP
  LOCKED``, so workers on many hosts take different jobs at once without waiting for each
  other, and every state change that queues a job sends a ``NOTIFY`` that wakes idle workers
  (:meth:`JobQueue.wait_for_work`); on SQLite they poll.

  Why not a queue library on PostgreSQL such as procrastinate: its jobs are its own rows, with
  its own states, retries and locks, while ours carry what the bot needs from the same row --
  two lanes picked by kind priority, per-worker leases renewed with progress, cancellation seen
  at the next heartbeat, delivery records, and the same behaviour on SQLite, where no such
  library runs. ``SKIP LOCKED`` plus ``LISTEN/NOTIFY`` is the core of those libraries and is a
  few lines here.

Job order is enqueue order (ids only grow). A worker can pass ``kinds`` to :meth:`claim_next` in
priority order, e.g. ``["edit", "sticker", "learn"]``, so short edits never wait behind a long
training; with ``fifo=True`` the kinds only filter and the oldest job wins.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from .db import Database, Session, dump_json, placeholders
from .errors import (
    ChatNotFound,
    DailyLimitReached,
    InvalidArgument,
    JobCancelled,
    JobNotActive,
    JobNotFound,
    LeaseLost,
    NotAllowed,
    StorageError,
    TooManyActiveJobs,
    UserNotFound,
)
from .files import DataDir, stored_paths
from .models import Enqueued, Job, JobKind, JobState
from .rows import from_row, one_row
from .usage import take_within, utc_day

DEFAULT_LEASE_S = 120.0
DEFAULT_MAX_ATTEMPTS = 3
MAX_PROGRESS_TEXT = 200
MAX_ERROR_TEXT = 2000
LEASE_EXPIRED_ERROR = "The worker stopped responding (lease expired)."
JOBS_CHANNEL = "oneword_jobs"  # NOTIFY channel: a job was queued (payload: its kind)
MAX_IDLE_S = 10.0  # the longest an idle worker sleeps on PostgreSQL without a notice

_KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ACTIVE = "('queued', 'running')"


def check_kind(kind: JobKind | str) -> str:
    """Return the kind as a plain string or raise :class:`InvalidArgument`."""
    value = kind.value if isinstance(kind, JobKind) else kind
    if not isinstance(value, str) or not _KIND_RE.fullmatch(value):
        raise InvalidArgument(
            f"Bad job kind {kind!r}: use a lowercase identifier (letters, digits, '_')."
        )
    return value


def _check_kinds(kinds: Sequence[JobKind | str] | None) -> list[str] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        raise InvalidArgument("kinds must be a list of kinds, not a single string.")
    return list(dict.fromkeys(check_kind(kind) for kind in kinds))


def _check_worker(worker_id: str) -> str:
    if not isinstance(worker_id, str) or not 0 < len(worker_id) <= 200:
        raise InvalidArgument("worker_id must be a non-empty string of at most 200 characters.")
    return worker_id


def _check_lease(lease_s: float) -> float:
    if not (isinstance(lease_s, int | float) and math.isfinite(lease_s) and lease_s > 0):
        raise InvalidArgument(f"lease_s must be a positive number of seconds, not {lease_s!r}.")
    return float(lease_s)


def _kind_filter(kinds: list[str] | None) -> tuple[str, list[str]]:
    if not kinds:
        return "", []
    return f" AND kind IN ({placeholders(len(kinds))})", kinds


class JobQueue:
    """Enqueue, claim, track and finish jobs. See the module docstring for the life cycle."""

    def __init__(self, db: Database, *, lease_s: float = DEFAULT_LEASE_S,
                 files: DataDir | None = None) -> None:
        """``files``: the data directory whose files a job's payload and result name; with a
        shared database they are published with the job (see :mod:`storage.files`)."""
        self._db = db
        self._lease_s = _check_lease(lease_s)
        self._files = files

    # ----------------------------------------------------------------- producer (bot) side

    async def enqueue(
        self,
        kind: JobKind | str,
        *,
        chat_id: int,
        user_id: int,
        payload: Mapping[str, Any] | None = None,
        reply_to_message_id: int | None = None,
        status_message_id: int | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        request_key: str | None = None,
        max_active: int | None = None,
        daily: tuple[str, int] | None = None,
    ) -> Enqueued:
        """Queue a job and return it with its 1-based queue position (1 = next to run).

        ``payload`` is the job's JSON input (concept ids, media paths, prompt, ...). The user and
        chat must have been upserted. In the same transaction, so concurrent requests cannot
        slip past them together:

        * ``request_key`` names what asked for the job (e.g. ``"chat:message"``): if a job
          with that key exists it is returned (``created`` False) and nothing is queued, so a
          request handled twice (the bot died before recording it handled) queues one job;
        * ``max_active``: :class:`TooManyActiveJobs` if the user already has that many jobs
          queued or running;
        * ``daily`` = ``(counter kind, limit)``: the job counts in the user's usage counter of
          today, :class:`DailyLimitReached` if that passes the limit.

        Raises :class:`InvalidArgument`, :class:`UserNotFound`, :class:`ChatNotFound`.
        """
        kind_value = check_kind(kind)
        payload_json = dump_json(payload or {}, "payload")
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidArgument(f"max_attempts must be a positive int, not {max_attempts!r}.")
        if request_key is not None and not (isinstance(request_key, str)
                                            and 0 < len(request_key) <= 200):
            raise InvalidArgument("request_key must be a short non-empty string.")
        await self._publish(payload)
        now = self._db.now()
        async with self._db.transaction() as tx:
            if request_key is not None:
                existing = await tx.value("SELECT id FROM jobs WHERE request_key = ?",
                                          (request_key,))
                if existing is not None:
                    job = await self._get(tx, existing)
                    position = await self._position(tx, existing, None)
                    return Enqueued(job=job, position=position or 0, created=False)
            if await tx.value("SELECT 1 FROM users WHERE id = ?", (user_id,)) is None:
                raise UserNotFound(f"Unknown user {user_id}.")
            if await tx.value("SELECT 1 FROM chats WHERE id = ?", (chat_id,)) is None:
                raise ChatNotFound(f"Unknown chat {chat_id}.")
            if max_active is not None and await self._count_active(tx, user_id) >= max_active:
                raise TooManyActiveJobs(
                    f"User {user_id} has {max_active} jobs queued or running.", max_active)
            if daily is not None:
                counter, limit = daily
                if not await take_within(tx, user_id, utc_day(now), counter, limit):
                    raise DailyLimitReached(
                        f"User {user_id} used today's {limit} {counter} jobs.", limit)
            job_id = await tx.insert(
                """
                INSERT INTO jobs (kind, state, chat_id, user_id, reply_to_message_id,
                                  status_message_id, payload, max_attempts, created_at,
                                  request_key)
                VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    kind_value,
                    chat_id,
                    user_id,
                    reply_to_message_id,
                    status_message_id,
                    payload_json,
                    max_attempts,
                    now,
                    request_key,
                ),
            )
            job = await self._get(tx, job_id)
            position = await self._position(tx, job_id, None)
            await tx.notify(JOBS_CHANNEL, kind_value)
        assert position is not None
        return Enqueued(job=job, position=position)

    async def find_request(self, request_key: str) -> Job | None:
        """The job queued for ``request_key`` (see :meth:`enqueue`), or None."""
        row = await self._db.one("SELECT * FROM jobs WHERE request_key = ?", (request_key,))
        return None if row is None else from_row(Job, row)

    async def set_status_message(self, job_id: int, message_id: int | None) -> None:
        """Remember the bot's "working on it..." message so progress can be edited into it."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE jobs SET status_message_id = ? WHERE id = ?", (message_id, job_id)
            )
        if not changed:
            raise JobNotFound(f"Job {job_id} does not exist.")

    async def get(self, job_id: int) -> Job:
        """Return a job or raise :class:`JobNotFound`."""
        async with self._db.read() as session:
            return await self._get(session, job_id)

    async def position(
        self, job_id: int, kinds: Sequence[JobKind | str] | None = None
    ) -> int | None:
        """1-based position of a queued job (1 = next), or None if it is not queued.

        Counts the queued jobs enqueued before it; pass ``kinds`` to count only jobs of those
        kinds (e.g. when the worker serves edits before trainings).
        """
        kind_list = _check_kinds(kinds)
        async with self._db.read() as session:
            return await self._position(session, job_id, kind_list)

    async def queue_length(self, kinds: Sequence[JobKind | str] | None = None) -> int:
        """Number of queued jobs (optionally of the given kinds)."""
        kind_sql, kind_params = _kind_filter(_check_kinds(kinds))
        return int(
            await self._db.value(
                f"SELECT COUNT(*) FROM jobs WHERE state = 'queued'{kind_sql}", kind_params
            )
        )

    async def list_active(
        self,
        *,
        user_id: int | None = None,
        chat_id: int | None = None,
        kinds: Sequence[JobKind | str] | None = None,
    ) -> list[Job]:
        """Queued and running jobs, oldest first, optionally of one user / chat / kinds."""
        sql = f"SELECT * FROM jobs WHERE state IN {_ACTIVE}"
        params: list[Any] = []
        if user_id is not None:
            sql += " AND user_id = ?"
            params.append(user_id)
        if chat_id is not None:
            sql += " AND chat_id = ?"
            params.append(chat_id)
        kind_sql, kind_params = _kind_filter(_check_kinds(kinds))
        rows = await self._db.all(f"{sql}{kind_sql} ORDER BY id", [*params, *kind_params])
        return [from_row(Job, row) for row in rows]

    async def count_active(self, user_id: int, kinds: Sequence[JobKind | str] | None = None) -> int:
        """How many queued or running jobs ``user_id`` has (for "one at a time" limits)."""
        async with self._db.read() as session:
            return await self._count_active(session, user_id, _check_kinds(kinds))

    @staticmethod
    async def _count_active(session: Session, user_id: int,
                            kinds: list[str] | None = None) -> int:
        kind_sql, kind_params = _kind_filter(kinds)
        return int(await session.value(
            f"SELECT COUNT(*) FROM jobs WHERE user_id = ? AND state IN {_ACTIVE}{kind_sql}",
            [user_id, *kind_params]))

    async def cancel(self, job_id: int, *, user_id: int | None = None) -> Job:
        """Cancel a queued or running job and return it (state ``cancelled``).

        With ``user_id``, only that user's job may be cancelled (:class:`NotAllowed` otherwise);
        pass None after checking other rights yourself (e.g. a group admin). A running job's
        worker learns about it at its next ``heartbeat``/``complete``/``fail``
        (:class:`JobCancelled`). Raises :class:`JobNotFound`, or :class:`JobNotActive` if it
        already finished.
        """
        now = self._db.now()
        async with self._db.transaction() as tx:
            job = await self._get(tx, job_id)
            if user_id is not None and job.user_id != user_id:
                raise NotAllowed("You can only cancel your own jobs.")
            if not job.is_active:
                raise JobNotActive(f"Job {job_id} already {job.state.value}.")
            rows = await tx.all(
                """
                UPDATE jobs SET state = 'cancelled', finished_at = ?, lease_until = NULL,
                                delivered = 1
                WHERE id = ? AND state IN ('queued', 'running') RETURNING *
                """,
                (now, job_id),
            )
            if not rows:  # finished meanwhile (PostgreSQL: a worker's completion)
                raise JobNotActive(f"Job {job_id} already {(await self._get(tx, job_id)).state}.")
        return from_row(Job, rows[0])

    async def undelivered(self, limit: int = 100) -> list[Job]:
        """Finished (``done`` or ``failed``) jobs whose outcome the bot has not sent yet,
        oldest first. Call at bot start-up and periodically; :meth:`mark_delivered` each."""
        rows = await self._db.all(
            """
            SELECT * FROM jobs
            WHERE delivered = 0 AND state IN ('done', 'failed')
            ORDER BY finished_at, id LIMIT ?
            """,
            (limit,),
        )
        return [from_row(Job, row) for row in rows]

    async def delivered_with_status(self, limit: int = 100) -> list[Job]:
        """Finished, delivered jobs whose status message the bot has not removed yet (it
        stopped between delivering and tidying up), oldest first. The bot clears a job's
        status message with :meth:`set_status_message` once it removed it."""
        rows = await self._db.all(
            """
            SELECT * FROM jobs
            WHERE delivered = 1 AND status_message_id IS NOT NULL
              AND state IN ('done', 'failed')
            ORDER BY id LIMIT ?
            """,
            (limit,),
        )
        return [from_row(Job, row) for row in rows]

    async def mark_delivered(self, job_id: int) -> None:
        """Record that the job's outcome reached the chat (idempotent)."""
        async with self._db.transaction() as tx:
            changed = await tx.execute("UPDATE jobs SET delivered = 1 WHERE id = ?", (job_id,))
        if not changed:
            raise JobNotFound(f"Job {job_id} does not exist.")

    # ------------------------------------------------------------- consumer (worker) side

    async def claim_next(
        self,
        worker_id: str,
        kinds: Sequence[JobKind | str] | None = None,
        *,
        fifo: bool = False,
        lease_s: float | None = None,
    ) -> Job | None:
        """Atomically take the next runnable queued job, or return None if there is none.

        ``kinds`` (None = any) lists the kinds this worker runs, in priority order unless
        ``fifo``. The job becomes ``running`` under ``worker_id`` with ``attempts + 1`` and a
        lease of ``lease_s`` (default: the queue's). Expired leases are recovered first.
        """
        _check_worker(worker_id)
        kind_list = _check_kinds(kinds)
        if kind_list == []:
            return None
        lease = self._lease_s if lease_s is None else _check_lease(lease_s)
        kind_sql, kind_params = _kind_filter(kind_list)
        order_sql, order_params = "id", []
        if kind_list and not fifo and len(kind_list) > 1:
            cases = " ".join(f"WHEN ? THEN {rank}" for rank in range(len(kind_list)))
            order_sql, order_params = f"CASE kind {cases} END, id", kind_list
        now = self._db.now()
        async with self._db.transaction(concurrent=True) as tx:
            await self._expire_leases(tx, now)
            job_id = await tx.value(
                f"""
                SELECT id FROM jobs
                WHERE state = 'queued' AND run_after <= ?{kind_sql}
                ORDER BY {order_sql} LIMIT 1{tx.skip_locked}
                """,
                [now, *kind_params, *order_params],
            )
            if job_id is None:
                return None
            rows = await tx.all(
                """
                UPDATE jobs SET state = 'running', worker_id = ?, attempts = attempts + 1,
                                started_at = ?, heartbeat_at = ?, lease_until = ?,
                                progress = 0, progress_text = ''
                WHERE id = ? AND state = 'queued'
                RETURNING *
                """,
                (worker_id, now, now, now + lease, job_id),
            )
        return from_row(Job, rows[0])

    async def heartbeat(
        self,
        job_id: int,
        worker_id: str,
        progress: float | None = None,
        text: str | None = None,
        *,
        lease_s: float | None = None,
    ) -> Job:
        """Extend the worker's lease and record progress (0..1, clamped) and a short text.

        Call at least every third of the lease. Raises :class:`JobCancelled` if the user
        cancelled the job (stop and discard), :class:`LeaseLost` if the job is no longer this
        worker's, :class:`JobNotFound`.
        """
        _check_worker(worker_id)
        lease = self._lease_s if lease_s is None else _check_lease(lease_s)
        value = None if progress is None else _clamp_progress(progress)
        short = None if text is None else str(text)[:MAX_PROGRESS_TEXT]
        async with self._db.transaction(concurrent=True) as tx:
            now = self._db.now()  # after any wait for a lock: the lease counts from the write
            rows = await tx.all(
                """
                UPDATE jobs SET progress = COALESCE(?, progress),
                                progress_text = COALESCE(?, progress_text),
                                heartbeat_at = ?, lease_until = ?
                WHERE id = ? AND state = 'running' AND worker_id = ?
                RETURNING *
                """,
                (value, short, now, now + lease, job_id, worker_id),
            )
            if not rows:
                await self._raise_not_held(tx, job_id, worker_id)
        return from_row(Job, rows[0])

    async def complete(
        self, job_id: int, worker_id: str, result: Mapping[str, Any] | None = None
    ) -> Job:
        """Mark the job ``done`` with its JSON ``result`` (e.g. ``{"media_id": 7}``).

        Raises :class:`JobCancelled` / :class:`LeaseLost` (then discard the result and its
        files), :class:`JobNotFound`.
        """
        _check_worker(worker_id)
        result_json = dump_json(result or {}, "result")
        await self._publish(result)
        now = self._db.now()
        async with self._db.transaction(concurrent=True) as tx:
            rows = await tx.all(
                """
                UPDATE jobs SET state = 'done', result = ?, progress = 1, finished_at = ?,
                                lease_until = NULL, error = NULL
                WHERE id = ? AND state = 'running' AND worker_id = ?
                RETURNING *
                """,
                (result_json, now, job_id, worker_id),
            )
            if not rows:
                await self._raise_not_held(tx, job_id, worker_id)
        return from_row(Job, rows[0])

    async def fail(
        self,
        job_id: int,
        worker_id: str,
        error: str,
        *,
        retry: bool = True,
        retry_delay_s: float = 0.0,
    ) -> Job:
        """Report a failed attempt. The job goes back to the queue (after ``retry_delay_s``) if
        ``retry`` and it has attempts left, else it becomes ``failed`` with ``error`` (shown to
        the user: keep it short and free of internals). Use ``retry=False`` for errors a retry
        cannot fix (bad input). Raises :class:`JobCancelled` / :class:`LeaseLost`,
        :class:`JobNotFound`.
        """
        _check_worker(worker_id)
        message = str(error)[:MAX_ERROR_TEXT]
        delay = max(0.0, float(retry_delay_s)) if math.isfinite(retry_delay_s) else 0.0
        now = self._db.now()
        async with self._db.transaction() as tx:
            row = await tx.one(
                "SELECT kind, attempts, max_attempts FROM jobs "
                "WHERE id = ? AND state = 'running' AND worker_id = ?",
                (job_id, worker_id),
            )
            if row is None:
                await self._raise_not_held(tx, job_id, worker_id)
            if retry and row["attempts"] < row["max_attempts"]:
                sql = """
                    UPDATE jobs SET state = 'queued', error = ?, run_after = ?,
                                    worker_id = NULL, lease_until = NULL
                    WHERE id = ? AND state = 'running' AND worker_id = ? RETURNING *
                """
                params: tuple[Any, ...] = (message, now + delay, job_id, worker_id)
                await tx.notify(JOBS_CHANNEL, row["kind"])
            else:
                sql = """
                    UPDATE jobs SET state = 'failed', error = ?, finished_at = ?,
                                    lease_until = NULL
                    WHERE id = ? AND state = 'running' AND worker_id = ? RETURNING *
                """
                params = (message, now, job_id, worker_id)
            # Still conditional: on PostgreSQL a claim may expire the lease meanwhile.
            rows = await tx.all(sql, params)
            if not rows:
                await self._raise_not_held(tx, job_id, worker_id)
        return from_row(Job, rows[0])

    async def release(self, job_id: int, worker_id: str) -> Job:
        """Give a running job back to the queue without counting the attempt (graceful
        worker shutdown). Raises :class:`JobCancelled` / :class:`LeaseLost`, :class:`JobNotFound`.
        """
        _check_worker(worker_id)
        async with self._db.transaction() as tx:
            rows = await tx.all(
                """
                UPDATE jobs SET state = 'queued',
                                attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                                worker_id = NULL, lease_until = NULL
                WHERE id = ? AND state = 'running' AND worker_id = ?
                RETURNING *
                """,
                (job_id, worker_id),
            )
            if not rows:
                await self._raise_not_held(tx, job_id, worker_id)
            await tx.notify(JOBS_CHANNEL, rows[0]["kind"])
        return from_row(Job, rows[0])

    async def requeue_stale(self) -> list[Job]:
        """Recover jobs whose worker lease expired (a crashed or hung worker): back to
        ``queued``, or ``failed`` if they used all attempts. Returns the affected jobs.

        :meth:`claim_next` does this too; call it on its own at worker start or from a
        supervisor to recover jobs even when no worker is claiming.
        """
        now = self._db.now()
        async with self._db.transaction() as tx:
            return await self._expire_leases(tx, now)

    async def wait_for_work(self, worker_id: str, poll_s: float) -> bool:
        """Return when a job may be waiting for ``worker_id``: call between empty claims.

        SQLite: after ``poll_s`` seconds (polling). PostgreSQL: as soon as a job is queued
        (``NOTIFY``), or at the next moment a delayed retry becomes runnable or a lease runs
        out, and at most :data:`MAX_IDLE_S` later as a safety net. Returns True when a
        notice woke it, False when the time ran out.
        """
        _check_worker(worker_id)
        if not self._db.notifies:
            await asyncio.sleep(poll_s)
            return False
        now = self._db.now()
        try:
            due = await self._next_deadline(now)
        except StorageError:  # unreachable for now: the caller's next claim will say so
            await asyncio.sleep(poll_s)
            return False
        timeout = MAX_IDLE_S if due is None else min(MAX_IDLE_S, max(due - now, 0.0) + 0.05)
        return await self._db.wait_for_notice(JOBS_CHANNEL, worker_id, max(timeout, 0.01))

    async def _next_deadline(self, now: float) -> float | None:
        """When a delayed retry becomes runnable or a lease runs out next, if ever."""
        return await self._db.value(
            """
            SELECT MIN(due) FROM (
                SELECT MIN(run_after) AS due FROM jobs WHERE state = 'queued' AND run_after > ?
                UNION ALL
                SELECT MIN(lease_until) FROM jobs WHERE state = 'running'
            ) AS deadlines
            """,
            (now,),
        )

    # ----------------------------------------------------------------------- internals

    async def _publish(self, value: Mapping[str, Any] | None) -> None:
        """Send the files a payload or result names to the shared database (if any)."""
        if self._files is None or self._files.blobs is None or not value:
            return
        if next(stored_paths(dict(value)), None) is not None:
            await asyncio.to_thread(self._files.publish_referenced, dict(value))

    @staticmethod
    async def _get(session: Session, job_id: int) -> Job:
        return await one_row(session, Job, "SELECT * FROM jobs WHERE id = ?", (job_id,),
                             JobNotFound(f"Job {job_id} does not exist."))

    @staticmethod
    async def _position(session: Session, job_id: int, kinds: list[str] | None) -> int | None:
        state = await session.value("SELECT state FROM jobs WHERE id = ?", (job_id,))
        if state is None:
            raise JobNotFound(f"Job {job_id} does not exist.")
        if state != JobState.QUEUED.value:
            return None
        kind_sql, kind_params = _kind_filter(kinds)
        ahead = await session.value(
            f"SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND id < ?{kind_sql}",
            [job_id, *kind_params],
        )
        return int(ahead) + 1

    @staticmethod
    async def _expire_leases(session: Session, now: float) -> list[Job]:
        # Rows another transaction holds are skipped (PostgreSQL): it is extending or ending
        # that lease, or expiring it already, and no two claimers wait on each other.
        rows = await session.all(
            f"""
            UPDATE jobs SET
                state = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END,
                finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE ? END,
                error = ?, worker_id = NULL, lease_until = NULL
            WHERE id IN (
                SELECT id FROM jobs WHERE state = 'running' AND lease_until < ?
                ORDER BY id{session.skip_locked}
            )
            RETURNING *
            """,
            (now, LEASE_EXPIRED_ERROR, now),
        )
        jobs = sorted((from_row(Job, row) for row in rows), key=lambda job: job.id)
        if any(job.state is JobState.QUEUED for job in jobs):
            await session.notify(JOBS_CHANNEL, "")
        return jobs

    @staticmethod
    async def _raise_not_held(session: Session, job_id: int, worker_id: str) -> NoReturn:
        row = await session.one("SELECT state, worker_id FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise JobNotFound(f"Job {job_id} does not exist.")
        if row["state"] == JobState.CANCELLED.value:
            raise JobCancelled(f"Job {job_id} was cancelled.")
        raise LeaseLost(
            f"Job {job_id} is {row['state']} and no longer held by worker {worker_id!r}."
        )


def _clamp_progress(progress: float) -> float:
    value = float(progress)
    if math.isnan(value):
        raise InvalidArgument("progress must be a number between 0 and 1, not NaN.")
    return min(1.0, max(0.0, value))
