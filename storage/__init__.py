"""OneWord persistence: the only package that talks SQL.

Open one :class:`Storage` per process on the data directory and use its repositories
(``store.users``, ``store.chats``, ``store.concepts``, ``store.jobs``, ``store.usage``,
``store.inversions``, ``store.media``) and file helpers (``store.files``). The database is the
SQLite file in the data directory by default, or PostgreSQL (``database_url``), shared by hosts
that share nothing else (:mod:`storage.pg`). Every error raised on purpose is a
:class:`StorageError` subclass. See each module's docstring for the rules it
enforces: :mod:`storage.concepts` (privacy), :mod:`storage.jobs` (queue life cycle),
:mod:`storage.files` (data directory layout).
"""

from .errors import (
    ChatNotFound,
    ConceptExists,
    ConceptNotFound,
    Conflict,
    DailyLimitReached,
    DatabaseBusy,
    DatabaseUnavailable,
    DataGone,
    FileTooLarge,
    InvalidArgument,
    InvalidConceptName,
    JobCancelled,
    JobNotActive,
    JobNotFound,
    LeaseLost,
    LimitReached,
    MediaNotFound,
    NotAllowed,
    NotFound,
    SchemaTooNew,
    StorageError,
    TooManyActiveJobs,
    UnsafePath,
    UserNotFound,
)
from .files import Area, DataDir
from .migrations import LATEST_VERSION
from .models import (
    ChatType,
    ConceptKind,
    Enqueued,
    InversionEntry,
    Job,
    JobKind,
    JobState,
    Media,
    MediaKind,
    StoredChat,
    StoredConcept,
    StoredUser,
)
from .names import MAX_CONCEPT_NAME_LENGTH, concept_name_key, normalize_concept_name
from .store import Storage

__all__ = [
    "LATEST_VERSION",
    "MAX_CONCEPT_NAME_LENGTH",
    "Area",
    "ChatNotFound",
    "ChatType",
    "ConceptExists",
    "ConceptKind",
    "ConceptNotFound",
    "DataDir",
    "Conflict",
    "DailyLimitReached",
    "DatabaseBusy",
    "DataGone",
    "DatabaseUnavailable",
    "Enqueued",
    "FileTooLarge",
    "InvalidArgument",
    "InvalidConceptName",
    "InversionEntry",
    "Job",
    "JobCancelled",
    "JobKind",
    "JobNotActive",
    "LimitReached",
    "TooManyActiveJobs",
    "JobNotFound",
    "JobState",
    "LeaseLost",
    "Media",
    "MediaKind",
    "MediaNotFound",
    "NotAllowed",
    "NotFound",
    "SchemaTooNew",
    "Storage",
    "StoredChat",
    "StoredConcept",
    "StoredUser",
    "StorageError",
    "UnsafePath",
    "UserNotFound",
    "concept_name_key",
    "normalize_concept_name",
]
