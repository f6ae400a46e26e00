"""Raw Bot API calls for tests of the local Bot API server (botapi/): what Telegram's HTTP
interface answers, without a bot library in between, and real encoded images to send."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp
from PIL import Image

from botapi import BotApiServer


def image_bytes(width: int = 640, height: int = 480, fmt: str = "JPEG",
                color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A real encoded image of the given size."""
    out = io.BytesIO()
    mode = "RGBA" if fmt == "PNG" else "RGB"
    Image.new(mode, (width, height), color).save(out, fmt)
    return out.getvalue()


def dimensions(data: bytes) -> tuple[int, int]:
    """The width and height of an encoded image."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


class Api:
    """Raw Bot API calls returning ``(status, body)``."""

    def __init__(self, http: aiohttp.ClientSession, server: BotApiServer):
        self.http = http
        self.base = f"{server.base_url}{server.token}"
        self.file_base = f"{server.base_file_url}{server.token}"

    async def json(self, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
        async with self.http.post(f"{self.base}/{method}", json=params) as resp:
            return resp.status, await resp.json()

    async def form(self, method: str, files: dict[str, tuple[bytes, str]] | None = None,
                   **params: Any) -> tuple[int, dict[str, Any]]:
        """Like python-telegram-bot: strings as is, everything else JSON-encoded."""
        form = aiohttp.FormData()
        for key, value in params.items():
            form.add_field(key, value if isinstance(value, str) else json.dumps(value))
        for key, (data, name) in (files or {}).items():
            form.add_field(key, data, filename=name, content_type="application/octet-stream")
        async with self.http.post(f"{self.base}/{method}", data=form) as resp:
            return resp.status, await resp.json()

    async def ok(self, method: str, **params: Any) -> Any:
        status, body = await self.json(method, **params)
        assert status == 200 and body["ok"] is True, body
        return body["result"]
