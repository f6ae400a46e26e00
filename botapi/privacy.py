"""Group privacy mode: which group messages a bot receives.

With privacy mode on (Telegram's default for bots), a bot in a group only gets commands
(``/cmd`` or ``/cmd@this_bot``), replies to its own messages and service messages. The
server records every message either way; this only decides whether an update is queued.
"""

from __future__ import annotations

from typing import Any

from .entities import leading_command


def bot_receives(
    message: dict[str, Any], chat_type: str, bot_id: int, bot_username: str, privacy: bool
) -> bool:
    """Whether ``message`` posted in a chat of ``chat_type`` reaches the bot."""
    if chat_type == "private" or not privacy:
        return True
    command = leading_command(message.get("text") or message.get("caption"))
    if command is not None:
        addressee = command[1]
        return addressee is None or addressee.lower() == bot_username.lower()
    replied = message.get("reply_to_message") or {}
    return (replied.get("from") or {}).get("id") == bot_id
