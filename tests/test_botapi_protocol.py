"""HTTP protocol corners of the local Bot API server that clients other than
python-telegram-bot rely on, and the control API's scripted flood control.

- parameters in the body of a GET request (pyTelegramBotAPI's async bot sends getUpdates and
  getFile that way: without them its offset is lost and updates come back forever);
- a method returned in the answer to a webhook POST is run (Telegram's "reply to webhook"),
  whatever the body's encoding;
- ``getMe`` reports ``can_read_all_group_messages`` as the inverse of privacy mode;
- ``force_429`` per method and per chat, with early retries recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from botapi import BotApiServer, ControlClient

HookAnswer = Callable[[dict[str, Any]], Awaitable[web.StreamResponse]]


def method_url(server: BotApiServer, method: str) -> str:
    return f"{server.base_url}{server.token}/{method}"


async def call(http: aiohttp.ClientSession, server: BotApiServer, verb: str, method: str,
               **kwargs: Any) -> tuple[int, dict[str, Any]]:
    async with http.request(verb, method_url(server, method), **kwargs) as resp:
        return resp.status, await resp.json()


# --------------------------------------------------------------------------- GET bodies


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart", "json"])
async def test_get_request_body_parameters_are_honoured(
    encoding: str, server: BotApiServer, tg: ControlClient, http: aiohttp.ClientSession
) -> None:
    alice = await tg.user("Alice")
    for text in ("one", "two", "three"):
        await alice.say(text)

    def body(**params: Any) -> dict[str, Any]:
        if encoding == "json":
            return {"json": params}
        form = aiohttp.FormData(quote_fields=False)
        for key, value in params.items():
            form.add_field(key, str(value))
        if encoding == "multipart":
            form.add_field("unused", b"", filename="empty.bin")  # forces multipart
        return {"data": form}

    status, first = await call(http, server, "GET", "getUpdates", **body(limit=1))
    assert status == 200 and len(first["result"]) == 1
    offset = first["result"][0]["update_id"] + 1
    status, rest = await call(http, server, "GET", "getUpdates", **body(offset=offset))
    assert [u["message"]["text"] for u in rest["result"]] == ["two", "three"]
    status, again = await call(http, server, "GET", "getUpdates", **body(offset=offset + 2))
    assert again["result"] == []  # the offset confirmed everything: nothing comes back

    photo = await alice.send_document(b"%PDF-1.4 tiny", "a.pdf", "application/pdf")
    status, file = await call(http, server, "GET", "getFile",
                              **body(file_id=photo.document["file_id"]))
    assert status == 200 and file["result"]["file_size"] == len(b"%PDF-1.4 tiny")


async def test_query_string_and_body_merge_and_bad_bodies(
    server: BotApiServer, tg: ControlClient, http: aiohttp.ClientSession
) -> None:
    alice = await tg.user("Alice")
    status, body = await call(http, server, "GET", f"sendMessage?chat_id={alice.id}",
                              data={"text": "from the body"})
    assert status == 200 and body["result"]["text"] == "from the body"
    status, body = await call(http, server, "POST", "sendMessage", data=b"{not json",
                              headers={"Content-Type": "application/json"})
    assert (status, body["description"]) == (400, "Bad Request: can't parse JSON object")
    status, body = await call(http, server, "GET", "getMe", data=b"--x\r\nbroken",
                              headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert status == 400 and body["description"].startswith("Bad Request: ")


# --------------------------------------------------------------------------- getMe


async def test_get_me_reports_privacy_mode(
    server: BotApiServer, tg: ControlClient, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, server, "GET", "getMe")
    assert body["result"]["can_read_all_group_messages"] is True  # privacy off by default
    await tg.set_privacy_mode(True)
    status, body = await call(http, server, "POST", "getMe")
    assert body["result"]["can_read_all_group_messages"] is False
    assert (await tg.state())["bot"]["can_read_all_group_messages"] is False


# --------------------------------------------------------------------------- webhook reply


@contextlib.asynccontextmanager
async def webhook(answer: HookAnswer) -> AsyncIterator[tuple[str, asyncio.Queue[Any]]]:
    """A local HTTP endpoint answering each update with ``answer(update)``."""
    seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handle(request: web.Request) -> web.StreamResponse:
        update = await request.json()
        await seen.put(update)
        return await answer(update)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", seen
    finally:
        await runner.cleanup()


def reply(encoding: str, **params: Any) -> web.Response:
    """A webhook answer carrying a method call in the given encoding."""
    if encoding == "json":
        return web.json_response(params)
    if encoding == "urlencoded":
        form = aiohttp.FormData({k: v if isinstance(v, str) else json.dumps(v)
                                 for k, v in params.items()})
        payload = form()
        return web.Response(body=payload._value, content_type=payload.content_type)
    writer = aiohttp.MultipartWriter("form-data")
    for key, value in params.items():
        part = writer.append(value if isinstance(value, str) else json.dumps(value))
        part.set_content_disposition("form-data", name=key)
    return web.Response(body=writer)


@pytest.mark.parametrize("encoding", ["json", "urlencoded", "multipart"])
async def test_method_in_webhook_answer_is_executed(
    encoding: str, server: BotApiServer, tg: ControlClient, http: aiohttp.ClientSession
) -> None:
    async def answer(update: dict[str, Any]) -> web.Response:
        text = update["message"]["text"]
        if text == "quiet":
            return web.Response(text="ok")
        if text == "broken":
            return reply(encoding, method="sendMessage", chat_id=update["message"]["chat"]["id"])
        return reply(
            encoding, method="sendMessage", chat_id=update["message"]["chat"]["id"],
            text=f"<b>echo</b> {text}", parse_mode="HTML",
            reply_markup={"inline_keyboard": [[{"text": "again", "callback_data": "again"}]]},
        )

    alice = await tg.user("Alice")
    async with webhook(answer) as (url, seen):
        status, _ = await call(http, server, "POST", "setWebhook", json={"url": url})
        assert status == 200
        await alice.say("quiet")
        await alice.say("broken")  # text missing: refused, and the next update still flows
        await alice.say("hello")
        echo = await alice.wait_reply(contains="echo hello")
        assert echo.entities == [{"type": "bold", "offset": 0, "length": 4}]
        assert echo.buttons == [{"text": "again", "callback_data": "again"}]
        assert [u["message"]["text"] for u in [seen.get_nowait() for _ in range(3)]] == [
            "quiet", "broken", "hello"]
    assert [m.text for m in await tg.bot_messages(alice.id)] == ["echo hello"]
    replies = [c for c in await tg.calls("sendMessage") if c.get("via") == "webhook_reply"]
    assert [c["ok"] for c in replies] == [False, True]
    assert replies[0]["description"] == "Bad Request: message text is empty"


# --------------------------------------------------------------------------- flood control


async def test_force_429_per_chat_and_early_retries(
    server: BotApiServer, tg: ControlClient, http: aiohttp.ClientSession
) -> None:
    alice = await tg.user("Alice")
    bob = await tg.user("Bob")
    a = await alice.say("a")
    b = await bob.say("b")
    await tg.force_429(2, retry_after=30, methods=["deleteMessage"], chat_ids=[alice.id])

    async def delete(chat_id: int, message_id: int) -> tuple[int, dict[str, Any]]:
        return await call(http, server, "POST", "deleteMessage",
                          data={"chat_id": str(chat_id), "message_id": str(message_id)})

    status, body = await delete(alice.id, a.message_id)
    assert status == 429 and body["parameters"] == {"retry_after": 30}
    assert body["description"] == "Too Many Requests: retry after 30"
    assert (await delete(bob.id, b.message_id))[0] == 200  # another chat is not held
    status, _ = await call(http, server, "POST", "sendMessage",
                           json={"chat_id": alice.id, "text": "other methods pass"})
    assert status == 200
    assert (await delete(alice.id, a.message_id))[0] == 429  # the 2nd scripted answer
    assert (await delete(alice.id, a.message_id))[0] == 200  # rule used up
    stats = await tg.stats()
    assert stats["served_429_by_method"] == {"deleteMessage": 2}
    assert stats["forced"] == []
    early = stats["early_retries"]
    assert [(e["method"], e["chat_id"]) for e in early] == [("deleteMessage", str(alice.id))] * 2
    assert all(25 < e["early_by_s"] <= 30 for e in early)


async def test_force_429_rules_stack_and_accept_one_chat_id(
    server: BotApiServer, tg: ControlClient, http: aiohttp.ClientSession
) -> None:
    alice = await tg.user("Alice")
    async with http.post(f"{server.url}/control/rate_limit",
                         json={"count": 1, "retry_after": 2, "chat_id": alice.id}) as resp:
        assert (await resp.json())["result"]["forced"][0]["chat_ids"] == [str(alice.id)]
    await tg.force_429(1, retry_after=1, methods=["sendPhoto"])
    status, body = await call(http, server, "POST", "sendChatAction",
                              json={"chat_id": alice.id, "action": "typing"})
    assert status == 429 and body["parameters"]["retry_after"] == 2
    assert [r["methods"] for r in (await tg.stats())["forced"]] == [["sendphoto"]]


# --------------------------------------------------------------------------- junk input


@pytest.mark.parametrize(("method", "params", "description"), [
    ("deleteMessages", {"message_ids": [{}]}, "can't parse message_ids JSON array"),
    ("sendMessage", {"text": "x", "reply_parameters": {"message_id": "x"}},
     "can't parse reply parameters JSON object"),
    ("sendMessage", {"text": "x", "reply_parameters": {"message_id": 1, "chat_id": {}}},
     "can't parse reply parameters JSON object"),
    ("sendMessage", {"text": "x", "reply_parameters": [1]},
     "can't parse reply parameters JSON object"),
    ("getUpdates", {"timeout": "nan"}, "invalid timeout specified"),
])
async def test_junk_parameters_are_refused_not_crashed_on(
    method: str, params: dict[str, Any], description: str, server: BotApiServer,
    tg: ControlClient, http: aiohttp.ClientSession,
) -> None:
    alice = await tg.user("Alice")
    status, body = await call(http, server, "POST", method,
                              json={"chat_id": alice.id, **params})
    assert (status, body["description"]) == (400, f"Bad Request: {description}")


async def test_long_poll_timeout_is_bounded(
    server: BotApiServer, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A huge ``timeout`` waits at most Telegram's bound (50 s; shortened here)."""
    from botapi.methods import core

    monkeypatch.setattr(core, "MAX_POLL_TIMEOUT_S", 0.3)
    status, body = await asyncio.wait_for(
        call(http, server, "POST", "getUpdates", json={"timeout": 1e30}), 10)
    assert (status, body["result"]) == (200, [])
