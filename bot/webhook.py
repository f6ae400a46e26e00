"""Webhook mode's authentication: the secret Telegram sends with every update.

Telegram puts the ``secret_token`` given to ``setWebhook`` in each POST's
``X-Telegram-Bot-Api-Secret-Token`` header, and python-telegram-bot refuses (403) a POST without
it. A webhook never runs without one: ``ONEWORD_WEBHOOK_SECRET`` when set, otherwise a strong
random secret made on the first start and kept in the data directory, so it stays the same
across restarts.
"""

from __future__ import annotations

import re

from oneword.settings import Settings
from storage import StorageError
from storage.secret_files import stored_secret

from .startup import StartupError

SECRET_NAME = "webhook-secret"
# Telegram's rule for secret_token: 1-256 characters, A-Z, a-z, 0-9, _ and -.
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


def webhook_secret(settings: Settings) -> str:
    """The configured webhook secret, or the one kept in the data directory (made on first
    use). Raises :class:`StartupError` for a configured secret Telegram would refuse, or when
    the data directory cannot keep one."""
    if settings.webhook_secret:
        if not _SECRET_RE.fullmatch(settings.webhook_secret):
            raise StartupError("ONEWORD_WEBHOOK_SECRET must be 1-256 characters, each a "
                               "letter A-Z or a-z, a digit, '_' or '-'")
        return settings.webhook_secret
    try:
        return stored_secret(settings.data_path, SECRET_NAME)
    except StorageError as exc:
        raise StartupError(f"webhook mode needs a secret and none could be kept: {exc}; set "
                           "ONEWORD_WEBHOOK_SECRET or make the data directory writable") from None
