"""Bot API method handlers, registered by their canonical (camelCase) names."""

from __future__ import annotations

from . import core, media, messages, stickers
from .common import Call, Handler


def method_table() -> dict[str, tuple[str, Handler]]:
    """Map of lower-cased method name to ``(canonical name, handler)``.

    Telegram treats method names case-insensitively, so lookups use the lower-cased form.
    """
    table: dict[str, tuple[str, Handler]] = {}
    for module in (core, messages, media, stickers):
        for name, handler in module.HANDLERS.items():
            table[name.lower()] = (name, handler)
    return table


__all__ = ["Call", "Handler", "method_table"]
