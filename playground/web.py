"""The chat page's server: static files, the sample photos, and the control API behind a proxy.

The page (``playground/static``) is plain HTML, CSS and JavaScript, with nothing loaded from
the internet. It plays users through the local Bot API server's control API; requests to
``/control/...`` are passed through to that server unchanged, so the page talks to a single
origin and needs no CORS. ``/api/setup`` tells the page who is who (the simulated users and
chats made at start-up) and which samples there are; ``/api/status`` whether the worker is up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from botapi import ControlClient
from playground.samples import SET_KINDS, SET_LABELS, Samples

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_UPLOAD = 60 * 1024 * 1024  # an album of ten large photos
PROXY_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
SETUP_KEY = web.AppKey("setup", dict)
UPSTREAM_KEY = web.AppKey("upstream", str)
SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)
STATUS_KEY = web.AppKey("status", Callable)

# The people in the playground: "you" in a private chat with the bot, and a group of three.
PEOPLE = (("Alice", "alice"), ("Bob", "bob"), ("Carol", "carol"))
GROUP_TITLE = "Sticker Club"


async def create_people(client: ControlClient) -> dict[str, Any]:
    """Make the simulated users and chats; returns what the page needs to know about them."""
    users = [await client.create_user(name, username=username) for name, username in PEOPLE]
    you = users[0]
    private = await client.private_chat(you["id"])
    group = await client.create_group(GROUP_TITLE, [u["id"] for u in users],
                                      admin_ids=[you["id"]])
    state = await client.state()
    return {
        "bot": state["bot"],
        "users": users,
        "chats": [
            {"id": private["id"], "type": "private", "title": state["bot"]["first_name"],
             "members": [you["id"]]},
            {"id": group["id"], "type": "group", "title": GROUP_TITLE,
             "members": [u["id"] for u in users]},
        ],
    }


def samples_json(samples: Samples) -> dict[str, Any]:
    """The samples as the page lists them (URLs under ``/samples/``)."""
    return {
        "sets": [{"name": name, "label": SET_LABELS.get(name, name.title()),
                  "kind": SET_KINDS.get(name, "object"),
                  "files": [f"/samples/{samples.relative(p)}" for p in files]}
                 for name, files in samples.sets.items()],
        "scenes": [{"file": f"/samples/{samples.relative(s.path)}", "caption": s.caption,
                    "subjects": s.subjects} for s in samples.scenes],
    }


def make_app(upstream: str, setup: dict[str, Any], samples: Samples,
             status: Callable[[], dict[str, Any]]) -> web.Application:
    """The playground's aiohttp application; ``upstream`` is the Bot API server's URL."""
    app = web.Application(client_max_size=MAX_UPLOAD)
    app[UPSTREAM_KEY] = upstream.rstrip("/")
    app[SETUP_KEY] = {**setup, "samples": samples_json(samples)}
    app[STATUS_KEY] = status
    app.cleanup_ctx.append(_client_session)
    app.router.add_get("/", _index)
    app.router.add_get("/api/setup", _setup)
    app.router.add_get("/api/status", _status)
    app.router.add_route("*", "/control/{tail:.*}", _proxy)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_static("/samples/", samples.folder)
    return app


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=PROXY_TIMEOUT) as session:
        app[SESSION_KEY] = session
        yield


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def _setup(request: web.Request) -> web.Response:
    return web.json_response(request.app[SETUP_KEY])


async def _status(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATUS_KEY]())


async def _proxy(request: web.Request) -> web.Response:
    """Pass a control API request through to the Bot API server and its answer back."""
    url = request.app[UPSTREAM_KEY] + request.rel_url.path_qs
    headers = {}
    if "Content-Type" in request.headers:
        headers["Content-Type"] = request.headers["Content-Type"]
    body = await request.read() if request.can_read_body else None
    try:
        async with request.app[SESSION_KEY].request(request.method, url, data=body,
                                                    headers=headers) as upstream:
            payload = await upstream.read()
            return web.Response(body=payload, status=upstream.status,
                                content_type=upstream.content_type,
                                headers={"Cache-Control": "no-store"})
    except aiohttp.ClientError as exc:
        return web.json_response({"ok": False, "error": f"local Telegram unreachable: {exc}"},
                                 status=502)
