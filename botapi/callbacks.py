"""Callback queries created by button presses and the bot's answers to them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .errors import bad_request

_QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"


@dataclass
class CallbackBook:
    """Open queries awaiting ``answerCallbackQuery`` and every answer given."""

    queries: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: list[dict[str, Any]] = field(default_factory=list)

    def open(self, query: dict[str, Any]) -> None:
        """Remember a query so that exactly one answer is accepted for it."""
        self.queries[query["id"]] = query

    def answer(self, query_id: str, answer: dict[str, Any]) -> None:
        """Record the answer or refuse unknown / already answered ids like Telegram."""
        query = self.queries.pop(query_id, None)
        if query is None:
            raise bad_request(_QUERY_INVALID)
        message = query.get("message") or {}
        self.answers.append({
            "callback_query_id": query_id,
            "chat_id": (message.get("chat") or {}).get("id"),
            "message_id": message.get("message_id"),
            "data": query.get("data"),
            "date": time.time(),
            **answer,
        })
