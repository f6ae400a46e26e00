"""Where /learn keeps the photos it collects: the user's ``user_data`` (persisted in our
database by :mod:`bot.persistence`), one session per chat, as plain JSON.

A session older than ``Tuning.session_ttl`` counts as gone; its photos are left to the media
retention purge.
"""

from __future__ import annotations

import time
from typing import Any

from .services import AnyContext, LearnSession, get_services

LEARN_KEY = "learn"


def _sessions(context: AnyContext, create: bool = False) -> dict[str, Any] | None:
    """The user's sessions by chat; made only when one is kept, so a user who never used
    /learn has no data to persist."""
    user_data = context.user_data
    if user_data is None:
        return None
    if create:
        return user_data.setdefault(LEARN_KEY, {})
    return user_data.get(LEARN_KEY)


def current(context: AnyContext, chat_id: int) -> LearnSession | None:
    """The context user's open session in this chat, or None (an expired one is dropped)."""
    sessions = _sessions(context)
    data = None if sessions is None else sessions.get(str(chat_id))
    if data is None:
        return None
    session = LearnSession.from_json(data)
    if time.time() - session.started > get_services(context).tuning.session_ttl:
        drop(context, chat_id)
        return None
    return session


def keep(context: AnyContext, session: LearnSession) -> None:
    """Store (or replace) the session of its chat."""
    sessions = _sessions(context, create=True)
    if sessions is None:
        raise RuntimeError("no user in this context to keep a /learn session for")
    sessions[str(session.chat_id)] = session.to_json()


def drop(context: AnyContext, chat_id: int) -> LearnSession | None:
    """Close the session of this chat and return it, if there was one."""
    sessions = _sessions(context)
    data = None if sessions is None else sessions.pop(str(chat_id), None)
    if sessions == {} and context.user_data is not None:
        del context.user_data[LEARN_KEY]  # nothing left to keep for this user
    return None if data is None else LearnSession.from_json(data)
