"""python-telegram-bot's persistence, kept in our database (``storage.bot_state``).

It stores what a conversation needs to survive a restart: the states of persistent
ConversationHandlers (the /learn conversation, :mod:`bot.learning`) and each user's
``user_data`` (there: the photos collected so far). Chat data, bot data and callback data are
not used by the bot and are not stored.

python-telegram-bot writes changes every ``update_interval`` seconds and at shutdown; a
handler whose reply promises that something is kept (\"Got 3 photos\") saves first with
:func:`save_now`, so a crash after the reply loses nothing.
"""

from __future__ import annotations

from typing import Any

from telegram.ext import BasePersistence, PersistenceInput

from storage import Storage

from .services import AnyContext, Services

ConversationKey = tuple[int | str, ...]
ConversationDict = dict[ConversationKey, object]
USER_DATA = "user_data"
UPDATE_INTERVAL = 5.0  # seconds between python-telegram-bot's own writes


def _conversation_kind(name: str) -> str:
    return f"conversation:{name}"


def _key_text(key: ConversationKey) -> str:
    return ":".join(str(part) for part in key)


def _key_parts(text: str) -> ConversationKey:
    return tuple(int(part) if part.lstrip("-").isdigit() else part for part in text.split(":"))


class DatabasePersistence(BasePersistence[dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """Conversation states and user data in the bot's storage (opened on first use, since
    python-telegram-bot loads persisted data before the bot's start-up hook runs)."""

    def __init__(self, services: Services, update_interval: float = UPDATE_INTERVAL) -> None:
        super().__init__(store_data=PersistenceInput(bot_data=False, chat_data=False,
                                                     user_data=True, callback_data=False),
                         update_interval=update_interval)
        self._services = services

    async def _store(self) -> Storage:
        await self._services.open()
        return self._services.store

    # ---------------------------------------------------------------------- user data

    async def get_user_data(self) -> dict[int, dict[Any, Any]]:
        """Every user's stored data."""
        entries = await (await self._store()).bot_state.load(USER_DATA)
        return {int(key): value for key, value in entries.items()}

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        """Write one user's data (an empty dict removes the entry)."""
        store = await self._store()
        if data:
            await store.bot_state.put(USER_DATA, str(user_id), data)
        else:
            await store.bot_state.drop(USER_DATA, str(user_id))

    async def drop_user_data(self, user_id: int) -> None:
        """Forget one user's data."""
        await (await self._store()).bot_state.drop(USER_DATA, str(user_id))

    async def refresh_user_data(self, user_id: int, user_data: dict[Any, Any]) -> None:
        """Nothing to refresh: this process is the only writer."""

    # ---------------------------------------------------------------------- conversations

    async def get_conversations(self, name: str) -> ConversationDict:
        """The stored states of the conversation handler ``name``."""
        entries = await (await self._store()).bot_state.load(_conversation_kind(name))
        return {_key_parts(key): value["state"] for key, value in entries.items()}

    async def update_conversation(self, name: str, key: ConversationKey,
                                  new_state: object | None) -> None:
        """Write one conversation's state (None: it ended)."""
        store = await self._store()
        if new_state is None:
            await store.bot_state.drop(_conversation_kind(name), _key_text(key))
        else:
            await store.bot_state.put(_conversation_kind(name), _key_text(key),
                                      {"state": new_state})

    # ---------------------------------------------------------------------- not stored

    async def get_chat_data(self) -> dict[int, dict[Any, Any]]:
        return {}

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        """Chat data is not stored."""

    async def drop_chat_data(self, chat_id: int) -> None:
        """Chat data is not stored."""

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[Any, Any]) -> None:
        """Chat data is not stored."""

    async def get_bot_data(self) -> dict[Any, Any]:
        return {}

    async def update_bot_data(self, data: dict[Any, Any]) -> None:
        """Bot data is not stored."""

    async def refresh_bot_data(self, bot_data: dict[Any, Any]) -> None:
        """Bot data is not stored."""

    async def get_callback_data(self) -> None:
        return None

    async def update_callback_data(self, data: Any) -> None:
        """Callback data is not stored."""

    async def flush(self) -> None:
        """Every write already went to the database."""


async def save_now(context: AnyContext, user_id: int, conversation: str | None = None,
                   key: ConversationKey | None = None, state: object | None = None) -> None:
    """Write the user's data now, and with ``conversation`` the state that conversation is
    entering (python-telegram-bot records a handler's new state only after it returns)."""
    application = context.application
    if application.persistence is None:
        return
    if conversation is not None and key is not None:
        await application.persistence.update_conversation(conversation, key, state)
    application.mark_data_for_update_persistence(user_ids=user_id)
    await application.update_persistence()
