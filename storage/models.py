"""Row types returned by the storage API: immutable dataclasses and the enums they use.

Timestamps are Unix epoch seconds (``float``, UTC) as given by the storage clock. JSON columns are
returned already decoded (``dict``). Enums subclass ``str`` so they compare equal to their values
(``job.state == "queued"`` works) and serialize naturally.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from oneword.jobs import ConceptKind as ConceptKind  # the contract's
from oneword.jobs import JobKind as JobKind  # the contract's; storage takes any identifier


class ChatType(StrEnum):
    """Telegram chat types the bot works in (channels are not supported)."""

    PRIVATE = "private"
    GROUP = "group"
    SUPERGROUP = "supergroup"


class JobState(StrEnum):
    """Life cycle of a job.

    ``queued -> running -> done | failed``; ``running -> queued`` again on a retryable failure,
    a released job or an expired lease; ``queued | running -> cancelled`` by the user.
    ``done``, ``failed`` and ``cancelled`` are final.
    """

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        """True while the job still waits or runs."""
        return self in (JobState.QUEUED, JobState.RUNNING)


class MediaKind(StrEnum):
    """What a stored media file is: a photo a user sent, or an image the bot produced."""

    PHOTO = "photo"
    RESULT = "result"


@dataclass(frozen=True, slots=True)
class StoredUser:
    """A Telegram user the bot has seen."""

    id: int
    name: str
    username: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class StoredChat:
    """A Telegram chat the bot has seen (a private chat with one user, or a group)."""

    id: int
    type: ChatType
    title: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class StoredConcept:
    """A learned word. ``scope_chat_id`` is the chat it was learned in; ``scope_type`` is that
    chat's type: a personal concept (learned in private) belongs to ``owner_id``, a group concept
    belongs to its group. ``file_path`` is relative to the data directory."""

    id: int
    owner_id: int
    scope_chat_id: int
    scope_type: ChatType
    name: str
    kind: ConceptKind
    file_path: str
    base_model: str
    num_vectors: int
    meta: dict[str, Any]
    created_at: float

    @property
    def is_personal(self) -> bool:
        """True when learned in a private chat (owned by a user, shareable into groups)."""
        return self.scope_type is ChatType.PRIVATE


@dataclass(frozen=True, slots=True)
class Job:
    """One unit of engine work and everything the bot needs to report on it."""

    id: int
    kind: str
    state: JobState
    chat_id: int
    user_id: int
    reply_to_message_id: int | None
    status_message_id: int | None
    payload: dict[str, Any]
    result: dict[str, Any] | None
    progress: float
    progress_text: str
    attempts: int
    max_attempts: int
    error: str | None
    worker_id: str | None
    lease_until: float | None
    heartbeat_at: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    run_after: float
    delivered: bool

    @property
    def is_active(self) -> bool:
        """True while queued or running."""
        return self.state.is_active


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What :meth:`storage.jobs.JobQueue.enqueue` returns: the job and its 1-based position."""

    job: Job
    position: int
    created: bool = True  # False: the job its request key named was already queued


@dataclass(frozen=True, slots=True)
class InversionEntry:
    """An inverted photo (noise latents etc.) cached on disk, keyed by photo, model and mode."""

    file_unique_id: str
    model_id: str
    mode: str
    path: str
    created_at: float
    last_used_at: float


@dataclass(frozen=True, slots=True)
class Media:
    """A stored image file: a user's photo (training or edit input) or a produced result."""

    id: int
    path: str
    kind: MediaKind
    user_id: int
    chat_id: int
    file_unique_id: str | None
    concept_id: int | None
    job_id: int | None
    created_at: float
