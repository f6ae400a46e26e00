"""The in-memory world: bot, users, chats, messages, files, updates and bookkeeping.

One :class:`World` per server. Everything a test can observe lives here, and
:meth:`World.reset` wipes it between tests while keeping what must outlive a reset (id
counters, the update queue object that a running bot polls, and — by default — the bot's own
configuration such as its commands and webhook).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .callbacks import CallbackBook
from .errors import CHAT_NOT_FOUND, bad_request
from .files import FileStore
from .ids import IdFactory
from .limits import RateLimits
from .messages import MessageLog
from .models import BotIdentity, Chat, User
from .notify import Notifier
from .stickers import StickerSets
from .updates import UpdateQueue


@dataclass
class BotConfig:
    """Settings the bot itself makes through the API."""

    commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    webhook: dict[str, Any] | None = None


class World:
    """State of one simulated Telegram, owned by a :class:`~botapi.server.BotApiServer`."""

    def __init__(self, bot: BotIdentity, privacy_mode: bool = False) -> None:
        self.bot = bot
        self.ids = IdFactory(salt=bot.token)
        self.updates = UpdateQueue(self.ids)
        self.changes = Notifier()
        self.config = BotConfig()
        self.privacy_mode = privacy_mode
        self._default_privacy = privacy_mode
        self._clear()

    def _clear(self) -> None:
        self.users: dict[int, User] = {}
        self.chats: dict[int, Chat] = {}
        self.messages = MessageLog()
        self.files = FileStore(self.ids)
        self.stickers = StickerSets(self.bot.username)
        self.limits = RateLimits()
        self.callbacks = CallbackBook()
        self.chat_actions: list[dict[str, Any]] = []
        self.call_log: deque[dict[str, Any]] = deque(maxlen=500)

    def reset(self, keep_bot_config: bool = True) -> None:
        """Forget users, chats, messages, files, sets, limits, settings and pending updates."""
        self._clear()
        self.privacy_mode = self._default_privacy
        self.updates.clear()
        if not keep_bot_config:
            self.config = BotConfig()
        self.changes.bump()

    def add_user(
        self, first_name: str, user_id: int | None = None, username: str | None = None,
        last_name: str | None = None, language_code: str | None = "en",
    ) -> User:
        """Create (or replace) a human user."""
        user = User(user_id or self.ids.user_id(), first_name, username, last_name, language_code)
        if user.id == self.bot.id:
            raise ValueError("user id collides with the bot id")
        self.users[user.id] = user
        return user

    def require_user(self, user_id: int) -> User:
        """A known user or ``ValueError`` (control API input error)."""
        user = self.users.get(user_id)
        if user is None:
            raise ValueError(f"unknown user {user_id}")
        return user

    def private_chat(self, user_id: int) -> Chat:
        """The private chat between the bot and ``user_id`` (id equals the user id)."""
        user = self.require_user(user_id)
        chat = self.chats.get(user.id)
        if chat is None:
            chat = Chat(user.id, "private", user=user)
            self.chats[chat.id] = chat
        return chat

    def create_group(
        self, title: str, member_ids: list[int], supergroup: bool = True,
        chat_id: int | None = None, username: str | None = None,
        admin_ids: list[int] | None = None,
    ) -> Chat:
        """A group or supergroup with the given members; the bot is always a member."""
        for user_id in member_ids:
            self.require_user(user_id)
        chat = Chat(
            chat_id or self.ids.group_id(supergroup),
            "supergroup" if supergroup else "group",
            title=title,
            username=username,
            member_ids=list(member_ids),
            admin_ids=list(admin_ids or []),
        )
        self.chats[chat.id] = chat
        return chat

    def find_chat(self, chat_id: int | str) -> Chat:
        """Resolve a Bot API ``chat_id`` (number or ``@username``) or 400 chat not found."""
        if isinstance(chat_id, str):
            wanted = chat_id.lstrip("@").lower()
            for chat in self.chats.values():
                if chat.username and chat.username.lower() == wanted:
                    return chat
            raise bad_request(CHAT_NOT_FOUND)
        chat = self.chats.get(chat_id)
        if chat is None:
            raise bad_request(CHAT_NOT_FOUND)
        return chat

    def record_chat_action(self, chat_id: int, action: str) -> None:
        """Remember a ``sendChatAction`` call."""
        self.chat_actions.append({"chat_id": chat_id, "action": action, "date": time.time()})

    def summary(self) -> dict[str, Any]:
        """Counts and identities for the control API's overview route."""
        return {
            "bot": self.bot.get_me(self.privacy_mode),
            "token": self.bot.token,
            "privacy_mode": self.privacy_mode,
            "users": [u.to_json() for u in self.users.values()],
            "chats": [c.to_json() for c in self.chats.values()],
            "messages": self.messages.count(),
            "files": len(self.files),
            "pending_updates": self.updates.pending_count,
            "webhook": self.config.webhook,
            "version": self.changes.version,
        }
