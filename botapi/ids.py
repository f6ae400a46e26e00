"""Identifier generation that survives state resets.

Update ids, file ids and callback query ids must never repeat for the lifetime of a server:
a bot process that outlives a test reset still remembers its last ``offset`` and may have
cached file ids, so handing out an old number again would silently drop or confuse things.
"""

from __future__ import annotations

import base64
import hashlib
import itertools


class IdFactory:
    """Monotonic counters plus realistic-looking opaque file ids."""

    def __init__(self, salt: str = "botapi") -> None:
        self._salt = salt
        self._updates = itertools.count(1)
        self._files = itertools.count(1)
        self._callbacks = itertools.count(1)
        self._users = itertools.count(1_000_001)
        self._groups = itertools.count(1)
        self._albums = itertools.count(13_000_000_000_000_001)

    def update_id(self) -> int:
        """Next ``update_id`` (strictly increasing, as Telegram guarantees)."""
        return next(self._updates)

    def file_ids(self, kind: str) -> tuple[str, str]:
        """A fresh ``(file_id, file_unique_id)`` pair.

        Real file ids are ~70 characters; ours are too, so a bot that squeezes a file id
        into 64-byte ``callback_data`` fails here exactly as it would in production.
        """
        seq = next(self._files)
        digest = hashlib.sha256(f"{self._salt}:{kind}:{seq}".encode()).digest()
        body = base64.urlsafe_b64encode(digest + seq.to_bytes(8, "big")).decode().rstrip("=")
        prefix = {"photo": "AgAC", "sticker": "CAAC", "animation": "CgAC"}.get(kind, "BQAC")
        unique = base64.urlsafe_b64encode(digest[:12]).decode().rstrip("=")
        return f"{prefix}AgIAAxkBAA{body}", f"AQAD{unique}"

    def callback_query_id(self) -> str:
        """Next callback query id (Telegram uses long numeric strings)."""
        return str(4_000_000_000_000_000_000 + next(self._callbacks))

    def media_group_id(self) -> str:
        """Next ``media_group_id`` shared by the messages of one album."""
        return str(next(self._albums))

    def user_id(self) -> int:
        """An id for a user created without an explicit one."""
        return next(self._users)

    def group_id(self, supergroup: bool) -> int:
        """A negative chat id shaped like Telegram's (``-100…`` for supergroups)."""
        seq = next(self._groups)
        return -(1_000_000_000_000 + seq) if supergroup else -(4_000_000_000 + seq)
