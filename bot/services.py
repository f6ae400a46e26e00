"""The bot's state, kept in one object in ``application.bot_data`` (no module globals).

:class:`Services` holds the settings, the storage (opened at start-up, closed at shutdown), the
progress-edit throttle and the jobs whose status message is still being sent. (/learn's
photo-collecting sessions live in python-telegram-bot's persisted user data, see
:mod:`bot.learning`.) Handlers reach it with :func:`get_services`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from telegram.ext import Application, CallbackContext

from oneword.settings import Settings
from storage import Storage

from .bursts import BurstGate

BOT_DATA_KEY = "oneword"


@dataclass(frozen=True)
class Tuning:
    """Timings that are not user settings; tests shorten them."""

    delivery_interval: float = 0.5  # seconds between looks at the job table
    album_wait: float = 1.5  # quiet time after the last photo of an album before using it
    session_ttl: float = 15 * 60.0  # a /learn waiting for photos expires after this
    # How long a call waits for Telegram's answer (PTB's default is 5 s). A send whose answer
    # times out after Telegram took it is sent again by the next delivery pass, so a busy
    # server must not be taken for a lost request.
    reply_timeout: float = 30.0
    # Refusals over a limit asked for less than this apart are one burst, answered once
    # (bot.bursts): a minute, the period of a group's message budget.
    refusal_quiet: float = 60.0


@dataclass
class StoredPhoto:
    """A photo downloaded, checked and recorded in the data directory."""

    path: str  # data-dir path
    media_id: int
    key: str  # Telegram's file_unique_id


@dataclass(frozen=True)
class ImageRef:
    """A picture in a Telegram message, before download."""

    file_id: str
    file_unique_id: str
    file_size: int | None
    # sent as a file (a document): Telegram left it uncompressed, and its edit goes back so too
    as_file: bool = False


@dataclass
class LearnSession:
    """One person's /learn in one chat, collecting photos (each checked and stored as it
    arrives). Kept as JSON in the user's persisted data, so it survives a restart."""

    chat_id: int
    user_id: int
    name: str
    kind: str
    request_message_id: int  # the /learn message (results reply to it)
    started: float  # epoch seconds
    stored: list[StoredPhoto] = field(default_factory=list)
    album_count: int = 0  # photos that arrived as part of albums
    descriptions: list[str] = field(default_factory=list)  # each stored photo's caption, or ""

    @property
    def count(self) -> int:
        """Photos collected so far."""
        return len(self.stored)

    def description_of(self, index: int) -> str:
        """What the sender said the index-th photo shows besides the thing ("" if nothing)."""
        return self.descriptions[index] if index < len(self.descriptions) else ""

    def to_json(self) -> dict[str, Any]:
        """The session as plain JSON data."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LearnSession:
        """Rebuild a session written by :meth:`to_json`."""
        photos = [StoredPhoto(**photo) for photo in data.get("stored", [])]
        return cls(**{**data, "stored": photos})


class EditThrottle:
    """Remembers when each status message was last written, and what it said, so progress
    edits stay at most one per interval and identical texts are never re-sent."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[tuple[int, int], tuple[float, str]] = {}

    def due(self, chat_id: int, message_id: int, interval: float) -> bool:
        """True if the message may be edited now."""
        last = self._last.get((chat_id, message_id))
        return last is None or self._clock() - last[0] >= interval

    def shows(self, chat_id: int, message_id: int, text: str) -> bool:
        """True if the message already shows ``text`` (as far as this process knows)."""
        last = self._last.get((chat_id, message_id))
        return last is not None and last[1] == text

    def wrote(self, chat_id: int, message_id: int, text: str) -> None:
        """Record that the message was just sent or edited to ``text``."""
        self._last[(chat_id, message_id)] = (self._clock(), text)

    def forget(self, chat_id: int, message_id: int) -> None:
        """Drop a message that will not be edited again."""
        self._last.pop((chat_id, message_id), None)


class Services:
    """Everything the handlers share, for one running Application."""

    def __init__(self, settings: Settings, tuning: Tuning) -> None:
        self.settings = settings
        self.tuning = tuning
        self.throttle = EditThrottle()
        self.announcing: set[int] = set()  # jobs whose status message is being sent
        self.refusals = BurstGate(tuning.refusal_quiet)
        self._store: Storage | None = None

    @property
    def store(self) -> Storage:
        """The open storage (between start-up and shutdown)."""
        if self._store is None:
            raise RuntimeError("the storage is not open (the bot has not started)")
        return self._store

    async def open(self) -> None:
        """Open the storage on the data directory (idempotent)."""
        if self._store is None:
            self._store = await Storage.open(self.settings.data_path,
                                             database_url=self.settings.database_url,
                                             max_file_bytes=self.settings.max_file_bytes,
                                             lease_s=self.settings.worker_lease)

    async def close(self) -> None:
        """Close the storage (idempotent)."""
        if self._store is not None:
            store, self._store = self._store, None
            await store.close()

    def edit_interval(self, chat_id: int) -> float:
        """Seconds between progress edits in this chat (Telegram group ids are negative)."""
        if chat_id < 0:
            return self.settings.group_edit_interval
        return self.settings.private_edit_interval


AnyContext = CallbackContext[Any, Any, Any, Any]
AnyApplication = Application[Any, Any, Any, Any, Any, Any]


def get_services(context: AnyContext | AnyApplication) -> Services:
    """The :class:`Services` of the running application."""
    application = context if isinstance(context, Application) else context.application
    return application.bot_data[BOT_DATA_KEY]
