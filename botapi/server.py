"""The HTTP server: Telegram's Bot API routes, file downloads and the control API.

Point an unmodified python-telegram-bot ``Application`` at it with::

    ApplicationBuilder().token(server.token)
        .base_url(f"{server.url}/bot").base_file_url(f"{server.url}/file/bot")

Responses use Telegram's envelope (``{"ok": true, "result": ...}`` or ``{"ok": false,
"error_code": ..., "description": ...}``) with the same HTTP status codes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .actors import UserActions
from .control import ControlApi
from .errors import ApiError, not_found, unauthorized
from .methods import Call, Handler, method_table
from .models import BotIdentity
from .params import MAX_BOT_UPLOAD, Params
from .state import World
from .webhook import WebhookDelivery

if TYPE_CHECKING:
    from .thread import ServerThread

LOG = logging.getLogger(__name__)
DEFAULT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
DEFAULT_USERNAME = "oneword_test_bot"
DEFAULT_NAME = "OneWord"
_TOKEN_SHAPE = re.compile(r"^\d+:[\w-]+$")
_QUIET = frozenset({
    "getUpdates", "getMe", "getFile", "getMyCommands", "getChat", "getChatMember",
    "getStickerSet", "getWebhookInfo",
})


class BotApiServer:
    """A local Telegram Bot API for one bot, plus a control API to play users.

    Use ``async with BotApiServer() as server`` (or ``await start()`` / ``await stop()``) in
    async code, or :meth:`run_in_thread` when the bot runs in another process or loop.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, token: str = DEFAULT_TOKEN,
        bot_username: str = DEFAULT_USERNAME, bot_name: str = DEFAULT_NAME,
        privacy_mode: bool = False,
    ) -> None:
        if not _TOKEN_SHAPE.match(token):
            raise ValueError("token must look like '<digits>:<secret>'")
        self.host = host
        self.port = port
        self.world = World(BotIdentity(token, bot_username, bot_name), privacy_mode)
        self.actions = UserActions(self.world)
        self._methods = method_table()
        self._webhook = WebhookDelivery(self.world, self._webhook_reply)
        self._runner: web.AppRunner | None = None

    @property
    def token(self) -> str:
        return self.world.bot.token

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (valid once started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Value for ``ApplicationBuilder.base_url``."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for ``ApplicationBuilder.base_file_url``."""
        return f"{self.url}/file/bot"

    def make_app(self) -> web.Application:
        """The aiohttp application with bot, file and control routes."""
        app = web.Application(client_max_size=MAX_BOT_UPLOAD * 3, middlewares=[_cors])
        app.router.add_route("*", r"/bot{token:[^/]*}/{method:[^/]*}", self._bot_call)
        app.router.add_get(r"/file/bot{token:[^/]*}/{path:.+}", self._download)
        app.router.add_routes(ControlApi(self.world, self.actions).routes())
        return app

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0 picks a free one, see :attr:`url`)."""
        self.world.updates.reopen()
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = self._runner.addresses
        if sockets:
            self.port = sockets[0][1]
        await self._webhook.start()
        LOG.info("Bot API server listening on %s", self.url)

    async def stop(self) -> None:
        """Release long polls, stop webhook delivery and close the listener."""
        self.world.updates.close()
        await self._webhook.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def run_in_thread(self) -> ServerThread:
        """Start the server on its own event loop in a daemon thread; returns when listening."""
        from .thread import ServerThread

        return ServerThread(self).start()

    def _check_token(self, token: str) -> None:
        if token != self.token:
            raise unauthorized() if _TOKEN_SHAPE.match(token) else not_found()

    async def _bot_call(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            self._check_token(request.match_info["token"])
            self._lookup(method)
            params = await Params.from_request(request)
        except ApiError as exc:
            self._log_call(method, None, exc)
            return web.json_response(exc.envelope(), status=exc.code)
        status, body = await self.call_method(method, params)
        return web.json_response(body, status=status)

    def _lookup(self, method: str) -> tuple[str, Handler]:
        entry = self._methods.get(method.lower())
        if entry is None:
            raise not_found()
        return entry

    async def call_method(
        self, method: str, params: Params, via: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Run one Bot API method; returns the HTTP status and Telegram's JSON envelope.

        ``via`` marks calls that did not come as a request (``"webhook_reply"``: a method the
        bot returned in its answer to a webhook POST) in the call log.
        """
        name = method
        try:
            name, handler = self._lookup(method)
            chat_id = params.values.get("chat_id")
            self.world.limits.check_forced(name, chat_id)
            result = await handler(Call(self.world, params, name))
        except ApiError as exc:
            self._log_call(name, params, exc, via)
            return exc.code, exc.envelope()
        except Exception:  # a server bug must not look like a Telegram answer
            LOG.exception("Bot API method %s crashed", name)
            return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        finally:
            if name not in _QUIET:
                self.world.changes.bump()
        self._log_call(name, params, None, via)
        delay = self.world.limits.answer_delay(name)
        if delay:
            await asyncio.sleep(delay)
        return 200, {"ok": True, "result": result}

    async def _webhook_reply(self, params: Params) -> None:
        """Telegram's "reply to a webhook": run the method named in the bot's answer.

        As with Telegram the bot never learns the outcome; failures show in the call log.
        """
        method = params.string("method") or ""
        status, body = await self.call_method(method, params, via="webhook_reply")
        if status != 200:
            LOG.info("webhook reply %s failed: %s", method, body.get("description"))

    def _log_call(
        self, method: str, params: Params | None, error: ApiError | None, via: str | None = None
    ) -> None:
        if method == "getUpdates" and error is None:
            return
        entry: dict[str, Any] = {"method": method, "time": time.time(), "ok": error is None}
        if via:
            entry["via"] = via
        if params is not None:
            entry["params"] = {k: _short(v) for k, v in params.values.items()}
            if params.uploads:
                entry["uploads"] = {k: len(u.data) for k, u in params.uploads.items()}
        if error is not None:
            entry.update(error_code=error.code, description=error.description)
        self.world.call_log.append(entry)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        try:
            self._check_token(request.match_info["token"])
            stored = self.world.files.by_path(request.match_info["path"])
            if stored is None:
                raise not_found()
        except ApiError as exc:
            return web.json_response(exc.envelope(), status=exc.code)
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )


def _short(value: Any, limit: int = 300) -> Any:
    """Truncate long string values for the call log."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


@web.middleware
async def _cors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Let a browser playground on another origin use the control API."""
    if request.method == "OPTIONS" and request.path.startswith("/control/"):
        response: web.StreamResponse = web.Response()
    else:
        response = await handler(request)
    if request.path.startswith("/control/"):
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    return response
