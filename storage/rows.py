"""Database rows to the storage's row types, one rule for every table: each field of the
dataclass is read from the column of the same name and converted by its declared type.

An enum field is built from its stored value, a ``dict`` field is a decoded JSON column (an
empty object where the column is NULL, unless the field may be None), a ``bool`` field is read
from SQLite's 0/1; any other value is taken as the database returns it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from .db import Params, Row, load_json
from .errors import StorageError

T = TypeVar("T")


class Reads(Protocol):
    """A database or a transaction: what reads one row."""

    async def one(self, sql: str, params: Params = ()) -> Any: ...


async def one_row(reads: Reads, cls: type[T], sql: str, params: Params,
                  missing: StorageError) -> T:
    """The one row ``sql`` selects, as a ``cls``; raises ``missing`` where there is none."""
    row = await reads.one(sql, params)
    if row is None:
        raise missing
    return from_row(cls, row)


def from_row(cls: type[T], row: Row) -> T:
    """An instance of the dataclass ``cls`` holding ``row``'s columns of its fields' names."""
    return cls(**{name: convert(row[name]) for name, convert in _converters(cls)})


@functools.cache
def _converters(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((field.name, _converter(hints[field.name])) for field in dataclasses.fields(cls))


def _converter(hint: Any) -> Callable[[Any], Any]:
    """How a column becomes a field of type ``hint``."""
    optional = False
    if isinstance(hint, types.UnionType):  # ``X | None``
        members = [t for t in typing.get_args(hint) if t is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        hint = members[0] if len(members) == 1 else hint
    base = typing.get_origin(hint) or hint
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return lambda value: None if value is None else base(value)
    if base is dict:
        return load_json if optional else lambda value: load_json(value) or {}
    if base is bool:
        return lambda value: None if value is None else bool(value)
    return lambda value: value
