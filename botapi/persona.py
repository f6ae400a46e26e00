"""A user bound to a chat, so end-to-end tests read like a conversation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .records import MessageRecord

if TYPE_CHECKING:
    from .client import ControlClient, Predicate


class Persona:
    """Acts as one user in one chat through a :class:`~botapi.client.ControlClient`.

    ``wait_reply`` defaults to messages newer than the last thing this persona sent, which is
    what "the bot's answer to what I just said" means in a test.
    """

    def __init__(self, client: ControlClient, user: dict[str, Any], chat_id: int) -> None:
        self.client = client
        self.user = user
        self.chat_id = chat_id
        self.last_sent: int | None = None

    @property
    def id(self) -> int:
        return self.user["id"]

    def in_chat(self, chat_id: int) -> Persona:
        """The same user acting in another chat (e.g. a group)."""
        return Persona(self.client, self.user, chat_id)

    def _sent(self, record: MessageRecord) -> MessageRecord:
        self.last_sent = record.message_id
        return record

    async def say(self, text: str, reply_to: int | MessageRecord | None = None) -> MessageRecord:
        """Post text (commands like ``/learn mochi`` included)."""
        return self._sent(await self.client.send_text(self.chat_id, self.id, text, _id(reply_to)))

    async def send_photo(
        self, data: bytes, caption: str | None = None,
        reply_to: int | MessageRecord | None = None,
    ) -> MessageRecord:
        """Send a photo."""
        return self._sent(
            await self.client.send_photo(self.chat_id, self.id, data, caption, _id(reply_to))
        )

    async def send_document(
        self, data: bytes, file_name: str, mime_type: str = "application/octet-stream",
        caption: str | None = None, reply_to: int | MessageRecord | None = None,
    ) -> MessageRecord:
        """Send a file as a document."""
        return self._sent(await self.client.send_document(
            self.chat_id, self.id, data, file_name, mime_type, caption, _id(reply_to)
        ))

    async def send_album(
        self, photos: list[bytes], caption: str | None = None,
        reply_to: int | MessageRecord | None = None,
    ) -> list[MessageRecord]:
        """Send several photos as one album (in a group, as a reply to the bot's request)."""
        records = await self.client.send_album(self.chat_id, self.id, photos, caption,
                                               _id(reply_to))
        self._sent(records[-1])
        return records

    async def send_sticker(
        self, data: bytes | None = None, file_id: str | None = None, emoji: str | None = None
    ) -> MessageRecord:
        """Send a sticker (new WEBP/PNG bytes or a known sticker's ``file_id``)."""
        return self._sent(
            await self.client.send_sticker(self.chat_id, self.id, data, file_id, emoji)
        )

    async def press(
        self, message: int | MessageRecord, callback_data: str | None = None,
        text: str | None = None,
    ) -> dict[str, Any]:
        """Press an inline button of a bot message; returns the CallbackQuery."""
        return await self.client.press_button(
            self.chat_id, _id(message), self.id, callback_data, text
        )

    async def wait_reply(
        self, predicate: Predicate | None = None, *, after: int | None = None,
        timeout: float = 10.0, **criteria: Any,
    ) -> MessageRecord:
        """The bot's first matching message after this persona's last one."""
        return await self.client.wait_for(
            self.chat_id, predicate, after=after if after is not None else self.last_sent,
            timeout=timeout, **criteria,
        )

    async def history(self) -> list[MessageRecord]:
        """The whole chat, both sides."""
        return await self.client.messages(self.chat_id)


def _id(message: int | MessageRecord | None) -> int | None:
    if isinstance(message, MessageRecord):
        return message.message_id
    return message
