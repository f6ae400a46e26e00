"""Typed access to Bot API call parameters, whatever the transport.

Telegram accepts a method's parameters as a query string, an urlencoded form, a JSON body or
multipart form data. python-telegram-bot sends plain strings as they are and every other value
JSON-encoded (``"123"``, ``"true"``, ``'{"inline_keyboard": ...}'``), so a value's type depends
on how it arrived. :class:`Params` hides that: handlers ask for the type they expect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

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
        """Merge query string and body (JSON, urlencoded or multipart) into one view."""
        values: dict[str, Any] = dict(request.query)
        uploads: dict[str, Upload] = {}
        if request.content_length and request.content_length > MAX_BOT_UPLOAD:
            raise entity_too_large()
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise bad_request("can't parse JSON object") from exc
                if not isinstance(body, dict):
                    raise bad_request("JSON object expected")
                values.update(body)
            else:
                try:
                    form = await request.post()
                except web.HTTPRequestEntityTooLarge as exc:
                    raise entity_too_large() from exc
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        uploads[key] = Upload(value.file.read(), value.filename, value.content_type)
                    else:
                        values[key] = value
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
            return float(value)
        except (TypeError, ValueError) as exc:
            raise bad_request(f"invalid {name} specified") from exc

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

