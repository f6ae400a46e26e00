"""The control API (``/control/...``): JSON routes through which tests and the playground
play users and inspect what the bot did.

Answers are ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}`` (HTTP 400 for
bad input, 404 for unknown things). Binary uploads are multipart (field ``file``) or JSON with
base64 (``data_b64``); downloads are raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .actors import UserActions
from .errors import ApiError
from .state import World

RouteHandler = Callable[[web.Request], Awaitable[Any]]


class ControlInputError(Exception):
    """Bad control input; becomes a 400/404 JSON answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _endpoint(fn: RouteHandler, world: World, mutates: bool) -> RouteHandler:
    """Wrap a route: envelope the result, map input errors to 4xx, bump the change version."""

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            result = await fn(request)
        except ControlInputError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=exc.status)
        except ApiError as exc:
            return web.json_response({"ok": False, "error": exc.description}, status=400)
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        finally:
            if mutates:
                world.changes.bump()
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response({"ok": True, "result": result})

    return handler


class _Body:
    """A control request body (JSON or multipart) with file extraction."""

    def __init__(self, fields: dict[str, Any], files: list[tuple[str, bytes, str | None]]):
        self.fields = fields
        self.files = files

    @classmethod
    async def read(cls, request: web.Request) -> _Body:
        if not request.can_read_body:
            return cls({}, [])
        if request.content_type == "application/json":
            data = await request.json()
            if not isinstance(data, dict):
                raise ControlInputError("JSON object expected")
            return cls(data, [])
        fields: dict[str, Any] = {}
        files: list[tuple[str, bytes, str | None]] = []
        try:
            form = await request.post()
        except (ValueError, HttpProcessingError) as exc:  # a broken multipart body
            raise ControlInputError(f"can't parse the request body: {exc}") from exc
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files.append((value.filename, value.file.read(), value.content_type))
            else:
                fields[key] = value
        return cls(fields, files)

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def integer(self, key: str) -> int | None:
        """An optional integer field."""
        value = self.fields.get(key)
        return None if value is None or value == "" else int(value)

    def require_integer(self, key: str) -> int:
        """A required integer field."""
        value = self.integer(key)
        if value is None:
            raise ControlInputError(f"{key} is required")
        return value

    def file(self) -> tuple[str | None, bytes, str | None]:
        """The one uploaded file (multipart ``file`` or JSON ``data_b64``)."""
        if self.files:
            return self.files[0]
        return None, _b64(self.fields.get("data_b64")), None

    def all_files(self) -> list[bytes]:
        """Every uploaded file (multipart) or ``photos_b64`` (JSON), in order."""
        if self.files:
            return [data for _, data, _ in self.files]
        return [_b64(item) for item in self.fields.get("photos_b64") or []]


def _b64(value: Any) -> bytes:
    if not value:
        raise ControlInputError("no file: send multipart field 'file' or JSON 'data_b64'")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ControlInputError("data_b64 is not valid base64") from exc


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


def _methods(body: _Body) -> list[str] | None:
    """A rule's ``methods``: a list, one name, or none (every method but getUpdates)."""
    methods = body.get("methods")
    return [methods] if isinstance(methods, str) else methods


class ControlApi:
    """Route handlers bound to one world."""

    def __init__(self, world: World, actions: UserActions) -> None:
        self.world = world
        self.actions = actions

    def routes(self) -> list[web.RouteDef]:
        """All control routes."""
        w = self.world
        table: list[tuple[str, str, RouteHandler, bool]] = [
            ("GET", "/control/state", self.state, False),
            ("POST", "/control/reset", self.reset, True),
            ("POST", "/control/settings", self.settings, True),
            ("GET", "/control/users", self.users, False),
            ("POST", "/control/users", self.create_user, True),
            ("GET", "/control/chats", self.chats, False),
            ("POST", "/control/chats", self.create_chat, True),
            ("POST", "/control/chats/{chat_id}/block", self.block, True),
            ("GET", "/control/chats/{chat_id}/messages", self.messages, False),
            ("POST", "/control/chats/{chat_id}/messages", self.send_text, True),
            ("GET", "/control/chats/{chat_id}/messages/{message_id}", self.message, False),
            ("POST", "/control/chats/{chat_id}/messages/{message_id}/edit", self.edit, True),
            ("POST", "/control/chats/{chat_id}/messages/{message_id}/press", self.press, True),
            ("POST", "/control/chats/{chat_id}/photo", self.send_photo, True),
            ("POST", "/control/chats/{chat_id}/document", self.send_document, True),
            ("POST", "/control/chats/{chat_id}/album", self.send_album, True),
            ("POST", "/control/chats/{chat_id}/sticker", self.send_sticker, True),
            ("GET", "/control/files/{file_id}", self.download, False),
            ("GET", "/control/files/{file_id}/info", self.file_info, False),
            ("GET", "/control/callback_answers", self.callback_answers, False),
            ("GET", "/control/chat_actions", self.chat_actions, False),
            ("GET", "/control/sticker_sets", self.sticker_sets, False),
            ("GET", "/control/commands", self.commands, False),
            ("GET", "/control/updates", self.updates, False),
            ("GET", "/control/calls", self.calls, False),
            ("GET", "/control/stats", self.stats, False),
            ("POST", "/control/rate_limit", self.rate_limit, True),
            ("POST", "/control/flood", self.flood, True),
            ("POST", "/control/slow", self.slow, True),
            ("GET", "/control/wait", self.wait, False),
        ]
        return [web.route(m, path, _endpoint(fn, w, mutates)) for m, path, fn, mutates in table]

    # -- world ---------------------------------------------------------------------------

    async def state(self, request: web.Request) -> Any:
        return self.world.summary()

    async def reset(self, request: web.Request) -> Any:
        body = await _Body.read(request)
        self.world.reset(keep_bot_config=_flag(body.get("keep_bot_config", True)))
        return True

    async def settings(self, request: web.Request) -> Any:
        body = await _Body.read(request)
        if "privacy_mode" in body.fields:
            self.world.privacy_mode = _flag(body.get("privacy_mode"))
        return {"privacy_mode": self.world.privacy_mode}

    async def users(self, request: web.Request) -> Any:
        return [u.to_json() for u in self.world.users.values()]

    async def create_user(self, request: web.Request) -> Any:
        body = await _Body.read(request)
        first_name = body.get("first_name")
        if not first_name:
            raise ControlInputError("first_name is required")
        user = self.world.add_user(
            first_name, body.integer("id"), body.get("username"), body.get("last_name"),
            body.get("language_code", "en"),
        )
        return user.to_json()

    async def chats(self, request: web.Request) -> Any:
        return [c.to_json() for c in self.world.chats.values()]

    async def create_chat(self, request: web.Request) -> Any:
        body = await _Body.read(request)
        kind = body.get("type", "private")
        if kind == "private":
            return self.world.private_chat(body.require_integer("user_id")).to_json()
        if kind not in ("group", "supergroup"):
            raise ControlInputError("type must be private, group or supergroup")
        admins = [int(a) for a in body.get("admin_ids") or []]
        if _flag(body.get("bot_is_admin", False)):
            admins.append(self.world.bot.id)
        chat = self.world.create_group(
            body.get("title") or "Group", [int(m) for m in body.get("member_ids") or []],
            supergroup=kind == "supergroup", chat_id=body.integer("id"),
            username=body.get("username"), admin_ids=admins,
        )
        return chat.to_json()

    async def block(self, request: web.Request) -> Any:
        chat = self._chat(request)
        if not chat.is_private:
            raise ControlInputError("only private chats can block the bot")
        chat.blocked = _flag((await _Body.read(request)).get("blocked", True))
        return chat.blocked

    def _chat(self, request: web.Request) -> Any:
        chat = self.world.chats.get(int(request.match_info["chat_id"]))
        if chat is None:
            raise ControlInputError("unknown chat", 404)
        return chat

    # -- users act -----------------------------------------------------------------------

    async def send_text(self, request: web.Request) -> Any:
        chat, body = self._chat(request), await _Body.read(request)
        message = self.actions.send_text(
            chat.id, body.require_integer("user_id"), body.get("text") or "",
            body.integer("reply_to"),
        )
        return message.to_control_json()

    async def send_photo(self, request: web.Request) -> Any:
        chat, body = self._chat(request), await _Body.read(request)
        _, data, _ = body.file()
        message = self.actions.send_photo(
            chat.id, body.require_integer("user_id"), data, body.get("caption"),
            body.integer("reply_to"),
        )
        return message.to_control_json()

    async def send_document(self, request: web.Request) -> Any:
        chat, body = self._chat(request), await _Body.read(request)
        name, data, content_type = body.file()
        message = self.actions.send_document(
            chat.id, body.require_integer("user_id"), data, body.get("file_name") or name or "file",
            body.get("mime_type") or content_type, body.get("caption"), body.integer("reply_to"),
        )
        return message.to_control_json()

    async def send_album(self, request: web.Request) -> Any:
        chat, body = self._chat(request), await _Body.read(request)
        messages = self.actions.send_album(
            chat.id, body.require_integer("user_id"), body.all_files(), body.get("caption"),
            body.integer("reply_to"),
        )
        return [m.to_control_json() for m in messages]

    async def send_sticker(self, request: web.Request) -> Any:
        chat, body = self._chat(request), await _Body.read(request)
        data = body.file()[1] if (body.files or body.get("data_b64")) else None
        message = self.actions.send_sticker(
            chat.id, body.require_integer("user_id"), data, body.get("file_id"), body.get("emoji"),
            body.integer("reply_to"),
        )
        return message.to_control_json()

    async def edit(self, request: web.Request) -> Any:
        chat, body = self._chat(request), await _Body.read(request)
        message = self.actions.edit_text(
            chat.id, int(request.match_info["message_id"]), body.require_integer("user_id"),
            body.get("text") or "",
        )
        return message.to_control_json()

    async def press(self, request: web.Request) -> Any:
        chat, body = self._chat(request), await _Body.read(request)
        return self.actions.press_button(
            chat.id, int(request.match_info["message_id"]), body.require_integer("user_id"),
            body.get("callback_data"), body.get("text"),
        )

    # -- inspection ----------------------------------------------------------------------

    async def messages(self, request: web.Request) -> Any:
        chat = self._chat(request)
        version = self.world.changes.version
        records = self.world.messages.in_chat(chat.id)
        from_bot = request.query.get("from_bot")
        if from_bot is not None:
            records = [m for m in records if m.from_bot == _flag(from_bot)]
        after = request.query.get("after")
        if after:
            records = [m for m in records if m.message_id > int(after)]
        return {"version": version, "messages": [m.to_control_json() for m in records]}

    async def message(self, request: web.Request) -> Any:
        chat = self._chat(request)
        message = self.world.messages.get(chat.id, int(request.match_info["message_id"]))
        if message is None:
            raise ControlInputError("unknown message", 404)
        return message.to_control_json()

    def _file(self, request: web.Request) -> Any:
        stored = self.world.files.get(request.match_info["file_id"])
        if stored is None:
            raise ControlInputError("unknown file", 404)
        return stored

    async def download(self, request: web.Request) -> Any:
        stored = self._file(request)
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )

    async def file_info(self, request: web.Request) -> Any:
        stored = self._file(request)
        return {
            **stored.file_json(),
            "kind": stored.kind,
            "file_name": stored.file_name,
            "mime_type": stored.mime_type,
            "width": stored.width,
            "height": stored.height,
        }

    async def callback_answers(self, request: web.Request) -> Any:
        query_id = request.query.get("query_id")
        answers = self.world.callbacks.answers
        return [a for a in answers if query_id is None or a["callback_query_id"] == query_id]

    async def chat_actions(self, request: web.Request) -> Any:
        chat_id = request.query.get("chat_id")
        actions = self.world.chat_actions
        return [a for a in actions if chat_id is None or a["chat_id"] == int(chat_id)]

    async def sticker_sets(self, request: web.Request) -> Any:
        return [
            {**s.to_json(), "owner_id": s.owner_id} for s in self.world.stickers.all()
        ]

    async def commands(self, request: web.Request) -> Any:
        result = []
        for key, commands in self.world.config.commands.items():
            scope, language = json.loads(key)
            result.append({"scope": scope, "language_code": language, "commands": commands})
        return result

    async def updates(self, request: web.Request) -> Any:
        return {"pending": self.world.updates.pending(), "log": list(self.world.updates.log)}

    async def calls(self, request: web.Request) -> Any:
        method = request.query.get("method")
        log = self.world.call_log
        return [c for c in log if method is None or c["method"].lower() == method.lower()]

    async def stats(self, request: web.Request) -> Any:
        return {
            **self.world.limits.to_json(),
            "pending_updates": self.world.updates.pending_count,
            "version": self.world.changes.version,
        }

    # -- limits and waiting --------------------------------------------------------------

    async def rate_limit(self, request: web.Request) -> Any:
        """Script 429s: ``count``, ``retry_after``, ``methods?``, ``chat_ids?`` (or ``chat_id``).

        Example: ``{"count": 3, "retry_after": 20, "methods": ["deleteMessage"],
        "chat_ids": [42]}`` answers the next three ``deleteMessage`` calls in chat 42 with
        ``429 Too Many Requests: retry after 20``; other chats and methods are untouched.
        """
        body = await _Body.read(request)
        methods = _methods(body)
        chat_ids = body.get("chat_ids")
        if chat_ids is None and body.get("chat_id") is not None:
            chat_ids = [body.get("chat_id")]
        elif isinstance(chat_ids, str | int):
            chat_ids = [chat_ids]
        self.world.limits.force(int(body.get("count", 1)), int(body.get("retry_after", 1)),
                                methods, chat_ids)
        return self.world.limits.to_json()

    async def slow(self, request: web.Request) -> Any:
        """Answer late: ``count``, ``seconds``, ``methods?`` (default all but getUpdates)."""
        body = await _Body.read(request)
        self.world.limits.slow(int(body.get("count", 1)), float(body.get("seconds", 1)),
                               _methods(body))
        return self.world.limits.to_json()

    async def flood(self, request: web.Request) -> Any:
        body = await _Body.read(request)
        flood = self.world.limits.flood
        flood.enabled = _flag(body.get("enabled", True))
        for key in ("private_per_second", "group_per_minute", "global_per_second"):
            if body.get(key) is not None:
                setattr(flood, key, type(getattr(flood, key))(body.get(key)))
        return flood.to_json()

    async def wait(self, request: web.Request) -> Any:
        since = int(request.query.get("since", self.world.changes.version))
        timeout = min(float(request.query.get("timeout", 10)), 60.0)
        return {"version": await self.world.changes.wait_after(since, timeout)}
