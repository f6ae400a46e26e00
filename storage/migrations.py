"""Schema migrations: an ordered list of steps, applied at open, tracked in the schema version
(SQLite: ``PRAGMA user_version``; PostgreSQL: a one-row table).

Rules for adding a step: append a new :class:`Migration` with the next version number; never edit
or reorder a step that has shipped (databases in the field already ran it). Each step runs in its
own write transaction together with the version bump, and re-reads the
version inside that transaction, so two processes opening the same file at once apply each step
exactly once, and a failed step leaves the database at the previous version, untouched.

All timestamps are REAL Unix epoch seconds. JSON columns hold JSON objects as TEXT. Steps are
written once, in SQLite's types, and run on PostgreSQL through :func:`storage.pg.translate_ddl`:
keep to SQL both understand (the PostgreSQL storage tests run every step).
"""

from __future__ import annotations

from dataclasses import dataclass

from .db import Database
from .errors import SchemaTooNew, StorageError


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: the version it brings the database to, and its SQL statements."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users, chats, concepts with shares, jobs",
        (
            """
            CREATE TABLE users (
                id          INTEGER PRIMARY KEY,           -- Telegram user id
                name        TEXT    NOT NULL DEFAULT '',
                username    TEXT,
                created_at  REAL    NOT NULL,
                updated_at  REAL    NOT NULL
            )
            """,
            """
            CREATE TABLE chats (
                id          INTEGER PRIMARY KEY,           -- Telegram chat id
                type        TEXT    NOT NULL
                            CHECK (type IN ('private', 'group', 'supergroup')),
                title       TEXT    NOT NULL DEFAULT '',
                created_at  REAL    NOT NULL,
                updated_at  REAL    NOT NULL
            )
            """,
            """
            CREATE TABLE concepts (
                id            INTEGER PRIMARY KEY AUTOINCREMENT,
                owner_id      INTEGER NOT NULL REFERENCES users(id),
                scope_chat_id INTEGER NOT NULL REFERENCES chats(id),
                name          TEXT    NOT NULL,            -- as typed (NFC), for display
                name_key      TEXT    NOT NULL,            -- casefolded, for lookups
                kind          TEXT    NOT NULL CHECK (kind IN ('object', 'person', 'style')),
                file_path     TEXT    NOT NULL,            -- relative to the data directory
                base_model    TEXT    NOT NULL,
                num_vectors   INTEGER NOT NULL DEFAULT 1 CHECK (num_vectors >= 1),
                meta          TEXT    NOT NULL DEFAULT '{}',
                created_at    REAL    NOT NULL,
                UNIQUE (scope_chat_id, name_key)
            )
            """,
            "CREATE INDEX concepts_owner ON concepts(owner_id)",
            "CREATE INDEX concepts_name ON concepts(name_key)",
            """
            CREATE TABLE concept_shares (
                concept_id  INTEGER NOT NULL REFERENCES concepts(id) ON DELETE CASCADE,
                chat_id     INTEGER NOT NULL REFERENCES chats(id),
                shared_at   REAL    NOT NULL,
                PRIMARY KEY (concept_id, chat_id)
            )
            """,
            "CREATE INDEX concept_shares_chat ON concept_shares(chat_id)",
            """
            CREATE TABLE jobs (
                id                  INTEGER PRIMARY KEY AUTOINCREMENT,
                kind                TEXT    NOT NULL,
                state               TEXT    NOT NULL DEFAULT 'queued'
                                    CHECK (state IN
                                           ('queued', 'running', 'done', 'failed', 'cancelled')),
                chat_id             INTEGER NOT NULL REFERENCES chats(id),
                user_id             INTEGER NOT NULL REFERENCES users(id),
                reply_to_message_id INTEGER,
                status_message_id   INTEGER,
                payload             TEXT    NOT NULL DEFAULT '{}',
                result              TEXT,
                progress            REAL    NOT NULL DEFAULT 0,
                progress_text       TEXT    NOT NULL DEFAULT '',
                attempts            INTEGER NOT NULL DEFAULT 0,
                max_attempts        INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
                error               TEXT,
                worker_id           TEXT,
                lease_until         REAL,
                heartbeat_at        REAL,
                created_at          REAL    NOT NULL,
                started_at          REAL,
                finished_at         REAL
            )
            """,
            "CREATE INDEX jobs_queue ON jobs(state, kind, id)",
            "CREATE INDEX jobs_user ON jobs(user_id, state)",
        ),
    ),
    Migration(
        2,
        "jobs: result delivery tracking and retry delay",
        (
            "ALTER TABLE jobs ADD COLUMN delivered INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE jobs ADD COLUMN run_after REAL NOT NULL DEFAULT 0",
            # Jobs that finished before delivery was tracked were answered (or lost) back then;
            # marking them delivered keeps an upgraded bot from re-sending old results.
            "UPDATE jobs SET delivered = 1 WHERE state IN ('done', 'failed', 'cancelled')",
            "CREATE INDEX jobs_undelivered ON jobs(finished_at) WHERE delivered = 0",
        ),
    ),
    Migration(
        3,
        "usage counters, inversion cache index, stored media",
        (
            """
            CREATE TABLE usage_counters (
                user_id  INTEGER NOT NULL REFERENCES users(id),
                day      TEXT    NOT NULL,                 -- UTC date, YYYY-MM-DD
                kind     TEXT    NOT NULL,                 -- 'edit', 'sticker', ...
                count    INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (user_id, day, kind)
            )
            """,
            """
            CREATE TABLE inversions (
                file_unique_id TEXT NOT NULL,              -- Telegram file_unique_id
                model_id       TEXT NOT NULL,
                mode           TEXT NOT NULL,
                path           TEXT NOT NULL,              -- relative to the data directory
                created_at     REAL NOT NULL,
                last_used_at   REAL NOT NULL,
                PRIMARY KEY (file_unique_id, model_id, mode)
            )
            """,
            "CREATE INDEX inversions_lru ON inversions(last_used_at)",
            """
            CREATE TABLE media (
                id             INTEGER PRIMARY KEY AUTOINCREMENT,
                path           TEXT    NOT NULL UNIQUE,    -- relative to the data directory
                kind           TEXT    NOT NULL CHECK (kind IN ('photo', 'result')),
                user_id        INTEGER NOT NULL REFERENCES users(id),
                chat_id        INTEGER NOT NULL REFERENCES chats(id),
                file_unique_id TEXT,
                concept_id     INTEGER REFERENCES concepts(id),
                job_id         INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
                created_at     REAL    NOT NULL
            )
            """,
            "CREATE INDEX media_concept ON media(concept_id)",
            "CREATE INDEX media_unique ON media(user_id, file_unique_id)",
            "CREATE INDEX media_created ON media(created_at)",
        ),
    ),
    Migration(
        4,
        "file contents in the database, for hosts that share only the database",
        (
            # Filled only when the database is shared (PostgreSQL, see storage.blobs); with
            # SQLite the data directory holds the files and this table stays empty.
            """
            CREATE TABLE files (
                path        TEXT    PRIMARY KEY,           -- relative path, as in the data dir
                size        INTEGER NOT NULL,
                data        BLOB    NOT NULL,
                created_at  REAL    NOT NULL
            )
            """,
            "CREATE INDEX files_created ON files(created_at)",
        ),
    ),
    Migration(
        5,
        "the bot's conversation states and per-user data, kept across restarts",
        (
            """
            CREATE TABLE bot_state (
                kind        TEXT    NOT NULL,              -- what the entry is (see botstate)
                key         TEXT    NOT NULL,
                value       TEXT    NOT NULL,              -- a JSON object
                updated_at  REAL    NOT NULL,
                PRIMARY KEY (kind, key)
            )
            """,
        ),
    ),
    Migration(
        6,
        "updates kept from arrival until handled; one job per request",
        (
            """
            CREATE TABLE update_inbox (
                update_id   INTEGER PRIMARY KEY,           -- Telegram's update id
                body        TEXT    NOT NULL,              -- the update as Telegram sent it
                received_at REAL    NOT NULL,
                replays     INTEGER NOT NULL DEFAULT 0,    -- handled again after a restart
                handled_at  REAL                           -- NULL until its handlers finished
            )
            """,
            "CREATE INDEX update_inbox_unhandled ON update_inbox(handled_at, update_id)",
            # What asked for the job (e.g. "chat:message"): a request handled twice, after a
            # crash, finds its job instead of queueing a second one.
            "ALTER TABLE jobs ADD COLUMN request_key TEXT",
            "CREATE UNIQUE INDEX jobs_request_key ON jobs(request_key)",
        ),
    ),
)

LATEST_VERSION: int = MIGRATIONS[-1].version


async def schema_version(db: Database) -> int:
    """The version the database is at (0 for a new, empty one)."""
    async with db.read() as session:
        return await session.schema_version()


async def migrate(db: Database, target: int = LATEST_VERSION) -> int:
    """Bring the database up to ``target`` (default: latest) and return the resulting version.

    Safe to call on every open and from several processes at once. Raises :class:`SchemaTooNew`
    if the file is newer than this code knows, rather than guessing at an unknown schema.
    """
    if not 0 <= target <= LATEST_VERSION:
        raise StorageError(f"Unknown schema version {target} (latest is {LATEST_VERSION}).")
    current = await schema_version(db)
    if current > LATEST_VERSION:
        raise SchemaTooNew(
            f"{db.path} has schema version {current}, newer than this code "
            f"(which knows up to {LATEST_VERSION}); upgrade the code."
        )
    for step in MIGRATIONS:
        if step.version > target:
            break
        if step.version <= current:
            continue
        async with db.transaction() as tx:
            current = await tx.schema_version()
            if current >= step.version:  # another process applied it meanwhile
                continue
            if current != step.version - 1:
                raise StorageError(
                    f"Cannot apply migration {step.version} on schema version {current}."
                )
            for statement in step.statements:
                await tx.ddl(statement)
            await tx.set_schema_version(step.version)
        current = step.version
    return await schema_version(db)
