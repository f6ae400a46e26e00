"""Secrets the service makes up itself and must keep: created once, then read back.

A secret lives in a file of its own in the data directory (the directory is the service's
durable state, kept across restarts and container upgrades), readable by its owner only.
Creation is atomic: two processes starting together end up with the same secret.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from .errors import InvalidArgument, StorageError

_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,63}")
SECRET_BYTES = 32  # 256 bits, written as 43 URL-safe characters


def stored_secret(data_dir: str | os.PathLike[str], name: str) -> str:
    """The secret called ``name`` kept in ``data_dir``, made (random, URL-safe: letters,
    digits, ``-`` and ``_``) and stored the first time it is asked for. Raises
    :class:`StorageError` when it can be neither read nor stored."""
    if not _NAME_RE.fullmatch(name):
        raise InvalidArgument(f"Bad secret name {name!r}: use lowercase letters, digits, '-'.")
    root = Path(data_dir).expanduser()
    path = root / f".{name}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        return _read(path) if path.exists() else _create(path)
    except OSError as exc:
        raise StorageError(f"Cannot keep the {name} in {root}: {exc}") from exc


def _create(path: Path) -> str:
    """Write a new secret to a private temporary file, then link it in place; if another
    process linked one first, theirs wins and is returned."""
    value = secrets.token_urlsafe(SECRET_BYTES)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # fails if it exists: never replaces a secret in use
        except FileExistsError:
            return _read(path)
    finally:
        tmp.unlink(missing_ok=True)
    return value


def _read(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise StorageError(f"{path} is empty: delete it to have a new secret made")
    return value
