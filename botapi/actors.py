"""What simulated users do: post messages and media, reply, edit, press inline buttons.

Each action stores the message like Telegram would and queues the matching update
(``message``, ``edited_message`` or ``callback_query``) for the bot, subject to group
privacy mode. Input mistakes by the test (unknown user, not a member, missing button) raise
``ValueError`` so the control API can answer 400 with a clear reason.
"""

from __future__ import annotations

import time
from typing import Any

from .entities import auto_entities
from .images import ImageProblem
from .keyboards import find_button
from .media import document_content, sticker_json, store_document, store_sticker
from .messages import StoredMessage
from .models import Chat, User
from .privacy import bot_receives
from .state import World


class UserActions:
    """Acts on behalf of users in a :class:`~botapi.state.World`."""

    def __init__(self, world: World) -> None:
        self.world = world

    def _member(self, chat_id: int, user_id: int) -> tuple[Chat, User]:
        chat = self.world.chats.get(chat_id)
        if chat is None:
            raise ValueError(f"unknown chat {chat_id}")
        user = self.world.require_user(user_id)
        if not chat.has_member(user_id):
            raise ValueError(f"user {user_id} is not a member of chat {chat_id}")
        return chat, user

    def _replied(self, chat: Chat, reply_to: int | None) -> dict[str, Any] | None:
        if reply_to is None:
            return None
        message = self.world.messages.live(chat.id, reply_to)
        if message is None:
            raise ValueError(f"no message {reply_to} in chat {chat.id}")
        return message.snapshot()

    def _post(
        self, chat_id: int, user_id: int, content: dict[str, Any],
        reply_to: int | None = None, extra: dict[str, Any] | None = None,
    ) -> StoredMessage:
        chat, user = self._member(chat_id, user_id)
        world = self.world
        message_id = world.messages.next_id(chat.id)
        data: dict[str, Any] = {
            "message_id": message_id,
            "from": user.to_json(),
            "chat": chat.to_json(),
            "date": int(time.time()),
        }
        replied = self._replied(chat, reply_to)
        if replied is not None:
            data["reply_to_message"] = replied
        data.update(extra or {})
        data.update(content)
        delivered = bot_receives(
            data, chat.type, world.bot.id, world.bot.username, world.privacy_mode
        )
        stored = world.messages.add(
            StoredMessage(chat.id, message_id, data, from_bot=False, delivered=delivered)
        )
        if delivered:
            world.updates.push("message", data)
        return stored

    @staticmethod
    def _caption(caption: str | None) -> dict[str, Any]:
        if not caption:
            return {}
        fields: dict[str, Any] = {"caption": caption}
        entities = auto_entities(caption)
        if entities:
            fields["caption_entities"] = entities
        return fields

    def send_text(
        self, chat_id: int, user_id: int, text: str, reply_to: int | None = None
    ) -> StoredMessage:
        """A text message; commands, mentions, hashtags and URLs get entities."""
        if not text:
            raise ValueError("text is empty")
        content: dict[str, Any] = {"text": text}
        entities = auto_entities(text)
        if entities:
            content["entities"] = entities
        return self._post(chat_id, user_id, content, reply_to)

    def send_photo(
        self, chat_id: int, user_id: int, data: bytes, caption: str | None = None,
        reply_to: int | None = None, media_group_id: str | None = None,
    ) -> StoredMessage:
        """A compressed photo: stored as a ladder of JPEG sizes (thumbnail … full).

        Like a Telegram app, this accepts any size (big photos are scaled down) but not bytes
        it cannot decode: truncated or corrupt images and images above
        ``images.DECODE_MAX_PIXELS`` raise ``ValueError`` (send those as a document).
        """
        self._member(chat_id, user_id)
        return self._post_photo(chat_id, user_id, self._store_photo(data), caption, reply_to,
                                media_group_id)

    def _store_photo(self, data: bytes) -> list[dict[str, Any]]:
        try:
            return self.world.files.add_photo(data)
        except ImageProblem as exc:
            raise ValueError(
                f"can't send this as a photo ({exc.detail}); a Telegram app would send it as a"
                " file: send it as a document instead"
            ) from exc

    def _post_photo(
        self, chat_id: int, user_id: int, photo: list[dict[str, Any]], caption: str | None,
        reply_to: int | None, media_group_id: str | None,
    ) -> StoredMessage:
        extra = {"media_group_id": media_group_id} if media_group_id else None
        return self._post(chat_id, user_id, {"photo": photo, **self._caption(caption)},
                          reply_to, extra)

    def send_document(
        self, chat_id: int, user_id: int, data: bytes, file_name: str,
        mime_type: str | None = None, caption: str | None = None, reply_to: int | None = None,
    ) -> StoredMessage:
        """A file sent "as document"; GIFs arrive as ``animation`` + ``document``."""
        if not data:
            raise ValueError("file is empty")
        self._member(chat_id, user_id)
        stored = store_document(self.world.files, data, file_name, mime_type)
        return self._post(chat_id, user_id, {**document_content(stored), **self._caption(caption)},
                          reply_to)

    def send_sticker(
        self, chat_id: int, user_id: int, data: bytes | None = None, file_id: str | None = None,
        emoji: str | None = None, reply_to: int | None = None,
    ) -> StoredMessage:
        """A sticker: new WEBP/PNG bytes or the ``file_id`` of a known sticker."""
        self._member(chat_id, user_id)
        if file_id:
            stored = self.world.files.get(file_id)
            if stored is None or stored.kind != "sticker":
                raise ValueError(f"no sticker with file_id {file_id}")
        elif data:
            stored = store_sticker(self.world.files, data, strict=False, emoji=emoji)
        else:
            raise ValueError("sticker needs data or file_id")
        return self._post(chat_id, user_id, {"sticker": sticker_json(stored)}, reply_to)

    def send_album(
        self, chat_id: int, user_id: int, photos: list[bytes], caption: str | None = None,
        reply_to: int | None = None,
    ) -> list[StoredMessage]:
        """2–10 photos sharing a ``media_group_id``, one update each (caption on the first)."""
        if not 2 <= len(photos) <= 10:
            raise ValueError("an album has 2 to 10 photos")
        self._member(chat_id, user_id)
        stored = [self._store_photo(data) for data in photos]  # all or nothing is posted
        group_id = self.world.ids.media_group_id()
        return [
            self._post_photo(chat_id, user_id, photo, caption if i == 0 else None, reply_to,
                             group_id)
            for i, photo in enumerate(stored)
        ]

    def edit_text(self, chat_id: int, message_id: int, user_id: int, text: str) -> StoredMessage:
        """The user edits their text message: queues an ``edited_message`` update."""
        chat, _ = self._member(chat_id, user_id)
        message = self.world.messages.live(chat.id, message_id)
        if message is None or message.from_bot or message.data["from"]["id"] != user_id:
            raise ValueError(f"user {user_id} has no message {message_id} in chat {chat_id}")
        if "text" not in message.data:
            raise ValueError("only text messages can be edited here")
        entities = auto_entities(text)
        message.edit({"text": text, **({"entities": entities} if entities else {})},
                     () if entities else ("entities",))
        if message.delivered:
            self.world.updates.push("edited_message", message.data)
        return message

    def press_button(
        self, chat_id: int, message_id: int, user_id: int,
        callback_data: str | None = None, text: str | None = None,
    ) -> dict[str, Any]:
        """Press an inline button of a bot message; queues a ``callback_query`` update."""
        chat, user = self._member(chat_id, user_id)
        message = self.world.messages.live(chat.id, message_id)
        if message is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        if callback_data is None and text is None:
            raise ValueError("give callback_data or the button text")
        button = find_button(message.data.get("reply_markup"), callback_data, text)
        if button is None or "callback_data" not in button:
            raise ValueError(f"message {message_id} has no such callback button")
        query = {
            "id": self.world.ids.callback_query_id(),
            "from": user.to_json(),
            "message": message.data,
            "chat_instance": str(abs(chat.id) * 7919 + 17),
            "data": button["callback_data"],
        }
        self.world.callbacks.open(query)
        self.world.updates.push("callback_query", query)
        return query
