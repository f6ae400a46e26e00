"""Typed access to Bot API call parameters, whatever the transport.

Telegram accepts a method's parameters as a query string, an urlencoded form, a JSON body or
multipart form data. python-telegram-bot sends plain strings as they are and every other value
JSON-encoded (``"123"``, ``"true"``, ``'{"inline_keyboard": ...}'``), so a value's type depends
on how it arrived. :class:`Params` hides that: handlers ask for the type they expect.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, MultipartReader, StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError

from .errors import bad_request, entity_too_large

MAX_BOT_UPLOAD = 50 * 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request."""

    data: bytes
    filename: str | None
    content_type: str | None


class Params:
    """Parameters of one call with coercing getters that raise Telegram-style 400s."""

    def __init__(self, values: dict[str, Any], uploads: dict[str, Upload] | None = None):
        self.values = values
        self.uploads = uploads or {}

    @classmethod
    async def from_request(cls, request: web.Request) -> Params:
        """Merge query string and body (JSON, urlencoded or multipart) into one view.

        The body is read whatever the HTTP method: Telegram honours parameters in the body of
        a GET request too (pyTelegramBotAPI's async bot sends ``getUpdates`` that way).
        """
        values: dict[str, Any] = dict(request.query)
        uploads: dict[str, Upload] = {}
        if request.content_length and request.content_length > MAX_BOT_UPLOAD:
            raise entity_too_large()
        if request.can_read_body:
            body, uploads = await read_body(request.content_type, request.headers,
                                            request.content)
            values.update(body)
        return cls(values, uploads)

    def has(self, name: str) -> bool:
        """Whether the parameter was given with a non-empty value (or as an upload)."""
        value = self.values.get(name)
        return (value is not None and value != "") or name in self.uploads

    def string(self, name: str, default: str | None = None) -> str | None:
        """A string parameter; JSON-native numbers are stringified."""
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value) if isinstance(value, int | float) else json.dumps(value)

    def require_string(self, name: str) -> str:
        """A non-empty string or ``400 <name> is empty``."""
        value = self.string(name)
        if not value:
            raise bad_request(f"{name} is empty")
        return value

    def integer(self, name: str, default: int | None = None) -> int | None:
        """An integer parameter or ``default``; malformed numbers are a 400."""
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise bad_request(f"invalid {name} specified") from exc

    def require_integer(self, name: str) -> int:
        """An integer or ``400 <name> is empty``."""
        value = self.integer(name)
        if value is None:
            raise bad_request(f"{name} is empty")
        return value

    def number(self, name: str, default: float | None = None) -> float | None:
        """A float parameter (timeouts may be fractional)."""
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise bad_request(f"invalid {name} specified") from exc
        if not math.isfinite(number):
            raise bad_request(f"invalid {name} specified")
        return number

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean given as JSON ``true``/``false`` or as the usual strings."""
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return bool(value)
        return str(value).strip().lower() in ("true", "1", "yes", "on")

    def obj(self, name: str, default: Any = None) -> Any:
        """A structured parameter, decoding it if it arrived as a JSON string."""
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise bad_request(f"can't parse {name} JSON object") from exc
        return value

    def chat_id(self, name: str = "chat_id") -> int | str:
        """A chat id: an integer or an ``@username`` string."""
        value = self.values.get(name)
        if value is None or value == "":
            raise bad_request(f"{name} is empty")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value).strip()
        if text.startswith("@"):
            return text
        try:
            return int(text)
        except ValueError as exc:
            raise bad_request("chat not found") from exc

    def upload(self, name: str) -> Upload | None:
        """The multipart part uploaded under ``name`` (for ``attach://name`` references too)."""
        return self.uploads.get(name)



async def read_body(
    content_type: str, headers: Mapping[str, str], content: StreamReader,
    limit: int = MAX_BOT_UPLOAD,
) -> tuple[dict[str, Any], dict[str, Upload]]:
    """Parameters and file parts of a body in any encoding the Bot API takes.

    Used for requests of every HTTP method and for a webhook's answer (a method to run).
    aiohttp's own ``request.post()`` reads POST bodies only, hence this reader. Bodies above
    ``limit`` bytes are a 413, malformed JSON a 400; other content types carry no parameters.
    """
    if content_type == "multipart/form-data":
        return await _read_multipart(headers, content, limit)
    raw = bytearray()
    async for chunk in content.iter_chunked(1 << 16):
        raw.extend(chunk)
        if len(raw) > limit:
            raise entity_too_large()
    if not raw:
        return {}, {}
    if content_type == "application/json":
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise bad_request("can't parse JSON object") from exc
        if not isinstance(body, dict):
            raise bad_request("JSON object expected")
        return body, {}
    if content_type == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(raw.decode(), keep_blank_values=True)), {}
        except UnicodeDecodeError as exc:
            raise bad_request("can't parse request parameters") from exc
    return {}, {}


async def _read_multipart(
    headers: Mapping[str, str], content: StreamReader, limit: int
) -> tuple[dict[str, Any], dict[str, Upload]]:
    values: dict[str, Any] = {}
    uploads: dict[str, Upload] = {}
    total = 0
    try:
        reader = MultipartReader(headers, content)
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                raise bad_request("can't parse multipart form data")
            data = bytearray()
            while chunk := await part.read_chunk():
                total += len(chunk)
                if total > limit:
                    raise entity_too_large()
                data.extend(chunk)
            if part.filename is not None:
                uploads[part.name] = Upload(bytes(data), part.filename,
                                            part.headers.get("Content-Type"))
            else:
                values[part.name] = data.decode(part.get_charset("utf-8"))
    except (ValueError, AssertionError, LookupError, HttpProcessingError) as exc:  # malformed
        raise bad_request("can't parse multipart form data") from exc
    return values, uploads
