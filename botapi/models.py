"""Users, the bot and chats of the simulated world, with their Telegram JSON forms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class User:
    """A Telegram account: a human played by a test, or the bot itself."""

    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None
    language_code: str | None = "en"
    is_bot: bool = False

    def to_json(self) -> dict[str, Any]:
        """The ``User`` object as it appears in ``from`` fields."""
        data: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code and not self.is_bot:
            data["language_code"] = self.language_code
        return data


@dataclass
class BotIdentity:
    """The one bot this server hosts: its token and user account."""

    token: str
    username: str
    first_name: str

    @property
    def id(self) -> int:
        """Telegram bot ids are the numeric prefix of the token."""
        return int(self.token.split(":", 1)[0])

    @property
    def user(self) -> User:
        """The bot as a ``User`` (``from`` of everything it sends)."""
        return User(self.id, self.first_name, self.username, is_bot=True)

    def get_me(self, privacy_mode: bool) -> dict[str, Any]:
        """The ``getMe`` result, including the bot-only capability flags.

        ``can_read_all_group_messages`` is true exactly when group privacy mode is off, as
        Telegram reports it after ``/setprivacy`` in BotFather.
        """
        return {
            **self.user.to_json(),
            "can_join_groups": True,
            "can_read_all_group_messages": not privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }


@dataclass
class Chat:
    """A private chat with one user, or a group / supergroup with members."""

    id: int
    type: str
    title: str | None = None
    user: User | None = None
    username: str | None = None
    member_ids: list[int] = field(default_factory=list)
    admin_ids: list[int] = field(default_factory=list)
    blocked: bool = False

    @property
    def is_private(self) -> bool:
        return self.type == "private"

    def to_json(self) -> dict[str, Any]:
        """The short ``Chat`` object embedded in messages."""
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.is_private and self.user is not None:
            data["first_name"] = self.user.first_name
            if self.user.last_name:
                data["last_name"] = self.user.last_name
            if self.user.username:
                data["username"] = self.user.username
        else:
            data["title"] = self.title
            if self.username:
                data["username"] = self.username
        return data

    def full_info(self) -> dict[str, Any]:
        """The ``ChatFullInfo`` object returned by ``getChat``."""
        return {
            **self.to_json(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def has_member(self, user_id: int) -> bool:
        """Whether ``user_id`` may post in this chat."""
        if self.is_private:
            return self.user is not None and self.user.id == user_id
        return user_id in self.member_ids
