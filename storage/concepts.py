"""Learned concepts ("words"), who may see them, sharing and deletion.

Ownership and privacy (enforced by the SQL below, never by callers filtering results):

* A concept learned in a **private chat** is *personal*: it belongs to its owner. The owner can
  use and list it in any chat they are in (their private chat, any group). Other people can use
  and list it only inside a group the owner explicitly shared it into (:meth:`ConceptRepo.share`).
* A concept learned in a **group** belongs to that group: anyone in the group can use and list
  it, nobody can use or list it anywhere else -- not even the person who taught it. It cannot be
  shared (it is not one person's to give away).
* Anyone else (a stranger) can neither use nor list a concept.

"User U in chat C" is taken from the Telegram update the bot is handling; the bot must pass the
real sender and chat, never ids typed by a user.

When several visible concepts have the same name, :meth:`ConceptRepo.get_visible` picks, in this
order: the user's own personal concept, then the chat's own concept, then a concept shared into
the chat. Names are unique (case-insensitively) per scope chat, and sharing refuses a name that
is already usable in the target group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from .db import Database, dump_json, placeholders
from .errors import (
    ChatNotFound,
    ConceptExists,
    ConceptNotFound,
    Conflict,
    InvalidArgument,
    NotAllowed,
    UserNotFound,
)
from .files import Area, DataDir
from .models import ChatType, ConceptKind, StoredConcept
from .names import concept_name_key, normalize_concept_name
from .rows import from_row, one_row

_SELECT = """
    SELECT c.*, s.type AS scope_type
    FROM concepts AS c JOIN chats AS s ON s.id = c.scope_chat_id
"""

# Concepts user :user may use in chat :chat. Keep in sync with the module docstring.
_VISIBLE = """
    (
        (s.type = 'private' AND c.owner_id = :user)
        OR (s.type <> 'private' AND c.scope_chat_id = :chat)
        OR EXISTS (
            SELECT 1 FROM concept_shares AS sh JOIN chats AS t ON t.id = sh.chat_id
            WHERE sh.concept_id = c.id AND sh.chat_id = :chat AND t.type <> 'private'
        )
    )
"""

# Among visible concepts with the same name: own personal first, then the chat's, then shared.
_PRECEDENCE = """
    CASE
        WHEN s.type = 'private' AND c.owner_id = :user THEN 0
        WHEN c.scope_chat_id = :chat THEN 1
        ELSE 2
    END
"""


def parse_concept_kind(value: ConceptKind | str) -> ConceptKind:
    """Return ``value`` as a :class:`ConceptKind` or raise :class:`InvalidArgument`."""
    try:
        return ConceptKind(value)
    except ValueError:
        raise InvalidArgument(
            f"Unknown concept kind {value!r}: expected object, person or style."
        ) from None


class ConceptRepo:
    """Create, find, share and delete concepts, applying the privacy rules above."""

    def __init__(self, db: Database, files: DataDir) -> None:
        self._db = db
        self._files = files

    async def create(
        self,
        *,
        owner_id: int,
        chat_id: int,
        name: str,
        kind: ConceptKind | str,
        file_path: str,
        base_model: str,
        num_vectors: int = 1,
        meta: Mapping[str, Any] | None = None,
        media_ids: Iterable[int] = (),
    ) -> StoredConcept:
        """Record a learned concept taught by ``owner_id`` in ``chat_id`` (its scope).

        ``file_path`` is the embedding file, a path from ``DataDir.new_path(Area.CONCEPTS, ...)``.
        ``media_ids`` (rows from :class:`storage.media.MediaRepo`, sent by the owner) are attached
        to the concept so deleting the concept deletes those photos too. All or nothing.

        Raises :class:`InvalidConceptName`, :class:`ConceptExists` (same name in that scope),
        :class:`UserNotFound`, :class:`ChatNotFound`, :class:`InvalidArgument`, :class:`UnsafePath`.
        """
        display = normalize_concept_name(name)
        key = concept_name_key(display)
        concept_kind = parse_concept_kind(kind)
        self._files.check(file_path, Area.CONCEPTS)
        if not isinstance(base_model, str) or not base_model.strip():
            raise InvalidArgument("base_model must be a non-empty model id.")
        if not isinstance(num_vectors, int) or num_vectors < 1:
            raise InvalidArgument(f"num_vectors must be a positive int, not {num_vectors!r}.")
        meta_json = dump_json(meta or {}, "meta")
        media = sorted(set(media_ids))
        await asyncio.to_thread(self._files.publish, file_path)
        now = self._db.now()
        async with self._db.transaction() as tx:
            if await tx.value("SELECT 1 FROM users WHERE id = ?", (owner_id,)) is None:
                raise UserNotFound(f"Unknown user {owner_id}.")
            if await tx.value("SELECT 1 FROM chats WHERE id = ?", (chat_id,)) is None:
                raise ChatNotFound(f"Unknown chat {chat_id}.")
            taken = await tx.value(
                "SELECT name FROM concepts WHERE scope_chat_id = ? AND name_key = ?",
                (chat_id, key),
            )
            if taken is not None:
                raise ConceptExists(f"A concept named {taken!r} already exists here.")
            try:
                concept_id = await tx.insert(
                    """
                    INSERT INTO concepts (owner_id, scope_chat_id, name, name_key, kind,
                                          file_path, base_model, num_vectors, meta, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    (
                        owner_id,
                        chat_id,
                        display,
                        key,
                        concept_kind.value,
                        file_path,
                        base_model.strip(),
                        num_vectors,
                        meta_json,
                        now,
                    ),
                )
            except Conflict as exc:  # lost a race with another process
                raise ConceptExists(f"A concept named {display!r} already exists here.") from exc
            if media:
                attached = await tx.execute(
                    f"""
                    UPDATE media SET concept_id = ?
                    WHERE id IN ({placeholders(len(media))}) AND user_id = ?
                      AND concept_id IS NULL
                    """,
                    (concept_id, *media, owner_id),
                )
                if attached != len(media):
                    raise InvalidArgument(
                        "Some media ids do not exist, are not the owner's, or already belong "
                        "to another concept."
                    )
            row = await tx.one(f"{_SELECT} WHERE c.id = ?", (concept_id,))
        assert row is not None
        return from_row(StoredConcept, row)

    async def get(self, concept_id: int) -> StoredConcept:
        """Return a concept by id, **without** privacy checks; raise :class:`ConceptNotFound`.

        For the worker, which runs jobs whose concept ids the bot already resolved with
        :meth:`get_visible`. Never use it to answer a user's request by name.
        """
        return await one_row(self._db, StoredConcept, f"{_SELECT} WHERE c.id = ?", (concept_id,),
                             ConceptNotFound(f"Concept {concept_id} does not exist (deleted?)."))

    async def get_visible(self, name: str, *, user_id: int, chat_id: int) -> StoredConcept | None:
        """The concept named ``name`` (any case) that ``user_id`` may use in ``chat_id``, or None.

        Raises :class:`InvalidConceptName` for a malformed name (it cannot exist).
        """
        key = concept_name_key(name)
        row = await self._db.one(
            f"""{_SELECT}
            WHERE c.name_key = :key AND {_VISIBLE}
            ORDER BY {_PRECEDENCE}, c.id
            LIMIT 1
            """,
            {"key": key, "user": user_id, "chat": chat_id},
        )
        return None if row is None else from_row(StoredConcept, row)

    async def list_visible(self, *, user_id: int, chat_id: int) -> list[StoredConcept]:
        """Every concept ``user_id`` may use in ``chat_id`` (their own + the chat's + shared),
        sorted by name."""
        rows = await self._db.all(
            f"""{_SELECT}
            WHERE {_VISIBLE}
            ORDER BY c.name_key, {_PRECEDENCE}, c.id
            """,
            {"user": user_id, "chat": chat_id},
        )
        return [from_row(StoredConcept, row) for row in rows]

    async def name_taken(self, name: str, *, chat_id: int) -> bool:
        """True if the scope ``chat_id`` already has a concept with this name (any case).

        Lets the bot refuse a duplicate name before it downloads photos and queues training;
        :meth:`create` still enforces it.
        """
        key = concept_name_key(name)
        found = await self._db.value(
            "SELECT 1 FROM concepts WHERE scope_chat_id = ? AND name_key = ?", (chat_id, key)
        )
        return found is not None

    async def share(self, concept_id: int, *, user_id: int, chat_id: int) -> None:
        """Let everyone in group ``chat_id`` use ``user_id``'s personal concept (idempotent).

        Raises :class:`ConceptNotFound`; :class:`NotAllowed` if the user is not the owner or the
        concept belongs to a group; :class:`InvalidArgument` if the target is not a group;
        :class:`ConceptExists` if the group can already use another concept with that name.
        """
        now = self._db.now()
        async with self._db.transaction() as tx:
            concept = await one_row(tx, StoredConcept, f"{_SELECT} WHERE c.id = ?", (concept_id,),
                                    ConceptNotFound(f"Concept {concept_id} does not exist."))
            if not concept.is_personal:
                raise NotAllowed(
                    f"{concept.name!r} belongs to the group it was learned in and cannot be shared."
                )
            if concept.owner_id != user_id:
                raise NotAllowed(f"Only the owner can share {concept.name!r}.")
            target = await tx.value("SELECT type FROM chats WHERE id = ?", (chat_id,))
            if target is None:
                raise ChatNotFound(f"Unknown chat {chat_id}.")
            if target == ChatType.PRIVATE.value:
                raise InvalidArgument("Concepts can only be shared into groups.")
            already = await tx.value(
                "SELECT 1 FROM concept_shares WHERE concept_id = ? AND chat_id = ?",
                (concept_id, chat_id),
            )
            if already is not None:
                return
            clash = await tx.value(
                """
                SELECT c.name FROM concepts AS c JOIN chats AS s ON s.id = c.scope_chat_id
                WHERE c.name_key = ? AND c.id <> ? AND (
                    (s.type <> 'private' AND c.scope_chat_id = ?)
                    OR c.id IN (SELECT concept_id FROM concept_shares WHERE chat_id = ?)
                )
                """,
                (concept_name_key(concept.name), concept_id, chat_id, chat_id),
            )
            if clash is not None:
                raise ConceptExists(f"This group can already use a concept named {clash!r}.")
            await tx.execute(
                "INSERT INTO concept_shares (concept_id, chat_id, shared_at) VALUES (?, ?, ?)",
                (concept_id, chat_id, now),
            )
        return None

    async def shared_into(self, concept_id: int) -> list[int]:
        """Ids of the groups a concept is shared into, oldest share first."""
        rows = await self._db.all(
            "SELECT chat_id FROM concept_shares WHERE concept_id = ? ORDER BY shared_at, chat_id",
            (concept_id,),
        )
        return [row["chat_id"] for row in rows]

    async def delete(self, concept_id: int, *, user_id: int, force: bool = False) -> list[str]:
        """Delete a concept, its shares, its attached media rows and all their files.

        Only the owner (for a group concept: the member who taught it) may delete, unless
        ``force`` -- for the bot to use after checking that ``user_id`` is a group admin.
        Returns the relative paths of the files that belonged to it (already removed from disk).
        The database change commits first; a file that cannot be removed is at worst orphaned.
        Raises :class:`ConceptNotFound` or :class:`NotAllowed`.
        """
        async with self._db.transaction() as tx:
            concept = await one_row(tx, StoredConcept, f"{_SELECT} WHERE c.id = ?", (concept_id,),
                                    ConceptNotFound(f"Concept {concept_id} does not exist."))
            if concept.owner_id != user_id and not force:
                raise NotAllowed(f"Only the person who taught {concept.name!r} can delete it.")
            media_rows = await tx.all(
                "SELECT path FROM media WHERE concept_id = ? ORDER BY id", (concept_id,)
            )
            paths = [concept.file_path, *(r["path"] for r in media_rows)]
            await tx.execute("DELETE FROM media WHERE concept_id = ?", (concept_id,))
            await tx.execute("DELETE FROM concepts WHERE id = ?", (concept_id,))
        await asyncio.to_thread(self._files.delete_many, paths)
        return paths

    async def count_owned(self, user_id: int) -> int:
        """How many concepts ``user_id`` taught (personal and group ones), for quota checks."""
        return int(
            await self._db.value("SELECT COUNT(*) FROM concepts WHERE owner_id = ?", (user_id,))
        )
