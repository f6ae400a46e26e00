"""Async Python client for the control API, used by end-to-end tests.

Typical use::

    async with ControlClient(server.url) as tg:
        alice = await tg.user("Alice", username="alice")
        sent = await alice.say("/start")
        reply = await alice.wait_reply(contains="Welcome")

``wait_for`` long-polls the server's change feed instead of sleeping, so tests react the moment
the bot answers and fail with a readable ``TimeoutError`` (listing the chat) when it does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aiohttp

from .persona import Persona
from .records import MessageRecord

T = TypeVar("T")
Predicate = Callable[[MessageRecord], bool]


class ControlError(Exception):
    """The control API refused a request (bad input, unknown chat...)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class ControlClient:
    """Thin async wrapper over ``/control/...`` routes."""

    def __init__(self, url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.url = url.rstrip("/")
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def _call(
        self, method: str, path: str, *, json: Any = None, data: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        async with self._http().request(
            method, f"{self.url}/control{path}", json=json, data=data, params=params
        ) as resp:
            if resp.content_type != "application/json":
                raise ControlError(resp.status, await resp.text())
            body = await resp.json()
            if not body.get("ok"):
                raise ControlError(resp.status, body.get("error", "unknown error"))
            return body["result"]

    # -- world ---------------------------------------------------------------------------

    async def state(self) -> dict[str, Any]:
        """Bot identity, token, users, chats and counters."""
        return await self._call("GET", "/state")

    async def reset(self, keep_bot_config: bool = True) -> None:
        """Wipe users, chats, messages, files, limits (bot commands/webhook kept by default)."""
        await self._call("POST", "/reset", json={"keep_bot_config": keep_bot_config})

    async def set_privacy_mode(self, enabled: bool) -> None:
        """Group privacy mode: when on, the bot only gets commands and replies in groups."""
        await self._call("POST", "/settings", json={"privacy_mode": enabled})

    async def create_user(
        self, first_name: str, *, user_id: int | None = None, username: str | None = None,
        last_name: str | None = None, language_code: str = "en",
    ) -> dict[str, Any]:
        """Create a user; returns its ``User`` JSON (``["id"]`` is what you need)."""
        return await self._call("POST", "/users", json={
            "first_name": first_name, "id": user_id, "username": username,
            "last_name": last_name, "language_code": language_code,
        })

    async def private_chat(self, user_id: int) -> dict[str, Any]:
        """The user's private chat with the bot (chat id == user id)."""
        return await self._call("POST", "/chats", json={"type": "private", "user_id": user_id})

    async def create_group(
        self, title: str, member_ids: Iterable[int], *, supergroup: bool = True,
        chat_id: int | None = None, username: str | None = None,
        admin_ids: Iterable[int] = (), bot_is_admin: bool = False,
    ) -> dict[str, Any]:
        """A (super)group with members; the first admin is its creator."""
        return await self._call("POST", "/chats", json={
            "type": "supergroup" if supergroup else "group", "title": title,
            "member_ids": list(member_ids), "id": chat_id, "username": username,
            "admin_ids": list(admin_ids), "bot_is_admin": bot_is_admin,
        })

    async def user(
        self, first_name: str, *, user_id: int | None = None, username: str | None = None,
        language_code: str = "en",
    ) -> Persona:
        """Create a user and their private chat; returns a :class:`Persona` to act as them."""
        user = await self.create_user(
            first_name, user_id=user_id, username=username, language_code=language_code
        )
        chat = await self.private_chat(user["id"])
        return Persona(self, user, chat["id"])

    async def block_bot(self, chat_id: int, blocked: bool = True) -> None:
        """The user of a private chat blocks (or unblocks) the bot: sends then fail 403."""
        await self._call("POST", f"/chats/{chat_id}/block", json={"blocked": blocked})

    # -- users act -----------------------------------------------------------------------

    async def send_text(
        self, chat_id: int, user_id: int, text: str, reply_to: int | None = None
    ) -> MessageRecord:
        """A user posts text (``/commands`` get ``bot_command`` entities)."""
        raw = await self._call("POST", f"/chats/{chat_id}/messages", json={
            "user_id": user_id, "text": text, "reply_to": reply_to,
        })
        return MessageRecord(raw)

    @staticmethod
    def _form(fields: dict[str, Any], files: list[tuple[bytes, str, str]]) -> aiohttp.FormData:
        form = aiohttp.FormData()
        for key, value in fields.items():
            if value is not None:
                form.add_field(key, str(value))
        for data, name, content_type in files:
            form.add_field("file", data, filename=name, content_type=content_type)
        return form

    async def send_photo(
        self, chat_id: int, user_id: int, data: bytes, caption: str | None = None,
        reply_to: int | None = None,
    ) -> MessageRecord:
        """A user sends a (compressed) photo; the server builds the PhotoSize ladder."""
        form = self._form({"user_id": user_id, "caption": caption, "reply_to": reply_to},
                          [(data, "photo.jpg", "image/jpeg")])
        return MessageRecord(await self._call("POST", f"/chats/{chat_id}/photo", data=form))

    async def send_document(
        self, chat_id: int, user_id: int, data: bytes, file_name: str,
        mime_type: str = "application/octet-stream", caption: str | None = None,
        reply_to: int | None = None,
    ) -> MessageRecord:
        """A user sends a file "as document" (GIFs arrive as animation + document)."""
        form = self._form(
            {"user_id": user_id, "caption": caption, "reply_to": reply_to,
             "file_name": file_name, "mime_type": mime_type},
            [(data, file_name, mime_type)],
        )
        return MessageRecord(await self._call("POST", f"/chats/{chat_id}/document", data=form))

    async def send_album(
        self, chat_id: int, user_id: int, photos: list[bytes], caption: str | None = None,
        reply_to: int | None = None,
    ) -> list[MessageRecord]:
        """A user sends 2–10 photos as one album (separate updates, one media_group_id)."""
        form = self._form(
            {"user_id": user_id, "caption": caption, "reply_to": reply_to},
            [(data, f"photo{i}.jpg", "image/jpeg") for i, data in enumerate(photos)],
        )
        raw = await self._call("POST", f"/chats/{chat_id}/album", data=form)
        return [MessageRecord(r) for r in raw]

    async def send_sticker(
        self, chat_id: int, user_id: int, data: bytes | None = None,
        file_id: str | None = None, emoji: str | None = None,
    ) -> MessageRecord:
        """A user sends a sticker (new WEBP/PNG bytes or a known sticker ``file_id``)."""
        path = f"/chats/{chat_id}/sticker"
        if data is None:
            body = {"user_id": user_id, "file_id": file_id, "emoji": emoji}
            return MessageRecord(await self._call("POST", path, json=body))
        form = self._form({"user_id": user_id, "emoji": emoji},
                          [(data, "sticker.webp", "image/webp")])
        return MessageRecord(await self._call("POST", path, data=form))

    async def edit_text(
        self, chat_id: int, message_id: int, user_id: int, text: str
    ) -> MessageRecord:
        """A user edits their text message (``edited_message`` update)."""
        raw = await self._call("POST", f"/chats/{chat_id}/messages/{message_id}/edit",
                               json={"user_id": user_id, "text": text})
        return MessageRecord(raw)

    async def press_button(
        self, chat_id: int, message_id: int, user_id: int,
        callback_data: str | None = None, text: str | None = None,
    ) -> dict[str, Any]:
        """A user presses an inline button (by data or label); returns the CallbackQuery."""
        return await self._call("POST", f"/chats/{chat_id}/messages/{message_id}/press", json={
            "user_id": user_id, "callback_data": callback_data, "text": text,
        })

    # -- inspection ----------------------------------------------------------------------

    async def _messages(
        self, chat_id: int, from_bot: bool | None = None, after: int | None = None
    ) -> tuple[int, list[MessageRecord]]:
        query: dict[str, Any] = {}
        if from_bot is not None:
            query["from_bot"] = "1" if from_bot else "0"
        if after is not None:
            query["after"] = str(after)
        result = await self._call("GET", f"/chats/{chat_id}/messages", params=query)
        return result["version"], [MessageRecord(r) for r in result["messages"]]

    async def messages(
        self, chat_id: int, *, from_bot: bool | None = None, after: int | None = None
    ) -> list[MessageRecord]:
        """Messages of a chat in order (deleted ones included, flagged)."""
        return (await self._messages(chat_id, from_bot, after))[1]

    async def bot_messages(self, chat_id: int, after: int | None = None) -> list[MessageRecord]:
        """What the bot sent to a chat."""
        return await self.messages(chat_id, from_bot=True, after=after)

    async def message(self, chat_id: int, message_id: int) -> MessageRecord:
        """One message with its edit history."""
        return MessageRecord(await self._call("GET", f"/chats/{chat_id}/messages/{message_id}"))

    async def download(self, file_id: str) -> bytes:
        """The bytes of any stored file (what the bot sent or a user uploaded)."""
        async with self._http().get(f"{self.url}/control/files/{file_id}") as resp:
            if resp.status != 200:
                raise ControlError(resp.status, await resp.text())
            return await resp.read()

    async def file_info(self, file_id: str) -> dict[str, Any]:
        """Stored metadata of a file (kind, size, dimensions, MIME type, path)."""
        return await self._call("GET", f"/files/{file_id}/info")

    async def callback_answers(self, query_id: str | None = None) -> list[dict[str, Any]]:
        """``answerCallbackQuery`` calls made by the bot."""
        params = {"query_id": query_id} if query_id else None
        return await self._call("GET", "/callback_answers", params=params)

    async def chat_actions(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """``sendChatAction`` calls made by the bot."""
        params = {"chat_id": str(chat_id)} if chat_id is not None else None
        return await self._call("GET", "/chat_actions", params=params)

    async def sticker_sets(self) -> list[dict[str, Any]]:
        """Sticker sets created by the bot (``StickerSet`` JSON plus ``owner_id``)."""
        return await self._call("GET", "/sticker_sets")

    async def commands(self) -> list[dict[str, Any]]:
        """Command lists set by the bot, per scope and language."""
        return await self._call("GET", "/commands")

    async def updates(self) -> dict[str, Any]:
        """``{"pending": [...], "log": [...]}`` of updates for the bot."""
        return await self._call("GET", "/updates")

    async def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Recent Bot API calls (method, params, outcome), newest last."""
        return await self._call("GET", "/calls", params={"method": method} if method else None)

    async def stats(self) -> dict[str, Any]:
        """Call counts, 429s served (``served_429``, ``served_429_by_method``), pending
        scripted rules (``forced``), ``early_retries`` (calls made before a 429's
        ``retry_after`` ran out: ``{method, chat_id, early_by_s}``), flood settings and
        pending updates."""
        return await self._call("GET", "/stats")

    # -- limits --------------------------------------------------------------------------

    async def force_429(
        self, count: int, retry_after: int = 1, methods: Iterable[str] | None = None,
        *, chat_ids: Iterable[int | str] | None = None,
    ) -> None:
        """Answer the next ``count`` bot calls with ``429 Too Many Requests: retry after
        <retry_after>`` (``parameters.retry_after`` set, as Telegram does).

        ``methods`` (e.g. ``["deleteMessage"]``; default all but getUpdates) and ``chat_ids``
        (default: every chat) narrow the rule, so one chat can be held in flood control while
        others are served. Rules stack. A later call of the same method to the same chat
        within ``retry_after`` seconds is listed in ``stats()["early_retries"]``.
        """
        await self._call("POST", "/rate_limit", json={
            "count": count, "retry_after": retry_after,
            "methods": list(methods) if methods else None,
            "chat_ids": list(chat_ids) if chat_ids is not None else None,
        })

    async def slow_answers(self, count: int, seconds: float,
                           methods: Iterable[str] | None = None) -> None:
        """Carry out the next ``count`` bot calls of ``methods`` (default all but getUpdates)
        at once but answer them ``seconds`` late, as a busy Telegram does."""
        await self._call("POST", "/slow", json={
            "count": count, "seconds": seconds, "methods": list(methods) if methods else None})

    async def flood_control(
        self, enabled: bool = True, *, private_per_second: float | None = None,
        group_per_minute: int | None = None, global_per_second: int | None = None,
    ) -> dict[str, Any]:
        """Switch realistic per-chat limits on/off (defaults 1/s private, 20/min group)."""
        return await self._call("POST", "/flood", json={
            "enabled": enabled, "private_per_second": private_per_second,
            "group_per_minute": group_per_minute, "global_per_second": global_per_second,
        })

    # -- waiting -------------------------------------------------------------------------

    async def wait_changes(self, since: int, timeout: float) -> int:
        """Block until the world changed after version ``since`` (or timeout)."""
        result = await self._call(
            "GET", "/wait", params={"since": str(since), "timeout": str(timeout)}
        )
        return result["version"]

    async def wait_until(
        self, probe: Callable[[], Awaitable[tuple[int, T | None]]], timeout: float,
        describe: Callable[[], Awaitable[str]] | None = None,
    ) -> T:
        """Re-run ``probe`` (returning ``(version, found)``) on every change until found."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            version, found = await probe()
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                detail = await describe() if describe else ""
                raise TimeoutError(f"condition not met within {timeout}s{detail}")
            await self.wait_changes(version, min(remaining, 5.0))

    async def wait_for(
        self, chat_id: int, predicate: Predicate | None = None, *, after: int | None = None,
        contains: str | None = None, photo: bool = False, sticker: bool = False,
        document: bool = False, buttons: bool = False, timeout: float = 10.0,
    ) -> MessageRecord:
        """Wait until the bot has a (non-deleted) message in ``chat_id`` matching everything
        given: ``predicate``, ``contains`` (substring of text/caption), media flags, and
        ``after`` (only messages with a larger message_id, e.g. the user's own message).
        Edits count: a message edited to match is returned too.
        """
        def matches(record: MessageRecord) -> bool:
            checks = (
                not record.deleted,
                contains is None or contains in (record.text or ""),
                not photo or bool(record.photo),
                not sticker or bool(record.sticker),
                not document or bool(record.document),
                not buttons or bool(record.buttons),
            )
            return all(checks) and (predicate is None or predicate(record))

        async def probe() -> tuple[int, MessageRecord | None]:
            version, records = await self._messages(chat_id, from_bot=True, after=after)
            return version, next((r for r in records if matches(r)), None)

        async def describe() -> str:
            records = await self.messages(chat_id)
            lines = "\n".join(f"  {r!r}" for r in records[-10:])
            return f"; chat {chat_id} ends with:\n{lines}"

        return await self.wait_until(probe, timeout, describe)

    async def wait_for_answer(self, query_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the bot answered callback query ``query_id``."""
        async def probe() -> tuple[int, dict[str, Any] | None]:
            version = (await self.stats())["version"]
            answers = await self.callback_answers(query_id)
            return version, answers[0] if answers else None

        return await self.wait_until(probe, timeout)
