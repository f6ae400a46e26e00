"""Logging that never shows the bot token.

The token is part of every Bot API URL (``.../bot<token>/sendMessage``), so any log line or
traceback that mentions a URL could leak it. :func:`install_redaction` wraps the log record
factory: each record's message and formatted traceback are computed once, at creation, with
every secret replaced by ``***``, whichever logger or handler is involved. httpx (which logs
every request URL at INFO) is set to WARNING.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from typing import Any

MASK = "***"
NOISY_LOGGERS = ("httpx", "httpcore", "apscheduler")


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret (and its secret half after ``:``) masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
            _, _, tail = secret.partition(":")
            if len(tail) >= 16:
                text = text.replace(tail, MASK)
    return text


class _RedactingFactory:
    """A LogRecord factory that masks secrets in the message and the traceback."""

    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous = previous
        self.secrets: set[str] = set()

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        if not self.secrets:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what we have
            message = str(record.msg)
        record.msg, record.args = redact(message, self.secrets), None
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return record


def install_redaction(*secrets: str) -> None:
    """Mask ``secrets`` in every log record created from now on (idempotent, cumulative)."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingFactory):
        factory = _RedactingFactory(factory)
        logging.setLogRecordFactory(factory)
    factory.secrets.update(s for s in secrets if s)


def quiet_noisy_loggers() -> None:
    """Keep chatty HTTP and scheduler libraries (whose INFO lines carry URLs) at WARNING."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
