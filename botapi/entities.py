"""Automatic message entities for text typed by users.

Telegram marks ``/commands``, ``@mentions``, ``#hashtags`` and URLs in incoming messages;
python-telegram-bot's ``CommandHandler`` relies on the ``bot_command`` entity at offset 0.
Offsets and lengths are in UTF-16 code units, as in the real API.
"""

from __future__ import annotations

import re
from typing import Any

_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,64})?")
# URLs first so that an "@name" or "#tag" inside a link stays part of the link.
_PATTERNS = (
    ("url", re.compile(r"\bhttps?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")),
    ("bot_command", _COMMAND),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}\b")),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d]\w*")),
)


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (how Telegram measures entities)."""
    return len(text.encode("utf-16-le")) // 2


def auto_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram would attach to ``text``, sorted by offset."""
    found: list[tuple[int, int, str]] = []
    taken: list[range] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            span = range(match.start(), match.end())
            if any(span.start < t.stop and t.start < span.stop for t in taken):
                continue
            taken.append(span)
            found.append((match.start(), match.end(), kind))
    found.sort()
    return [
        {
            "type": kind,
            "offset": utf16_len(text[:start]),
            "length": utf16_len(text[start:end]),
        }
        for start, end, kind in found
    ]


def leading_command(text: str | None) -> tuple[str, str | None] | None:
    """``(command, addressee)`` if ``text`` starts with a bot command, else ``None``.

    ``"/add@OneWordBot mochi"`` gives ``("add", "OneWordBot")``.
    """
    if not text:
        return None
    match = _COMMAND.match(text)
    if not match:
        return None
    command, _, addressee = match.group(0)[1:].partition("@")
    return command, addressee or None
