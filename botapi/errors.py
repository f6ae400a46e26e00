"""Bot API errors: one exception type that carries Telegram's error envelope.

Handlers raise :class:`ApiError`; the server turns it into the exact JSON body and HTTP
status Telegram uses, so a client (python-telegram-bot) maps it to the same exception it
would get from the real service.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A Bot API failure: HTTP status ``code``, ``description`` and optional parameters."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def envelope(self) -> dict[str, Any]:
        """The JSON body Telegram returns for this error."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str) -> ApiError:
    """400 with Telegram's ``Bad Request: `` prefix."""
    return ApiError(400, f"Bad Request: {reason}")


def forbidden(reason: str) -> ApiError:
    """403 with Telegram's ``Forbidden: `` prefix."""
    return ApiError(403, f"Forbidden: {reason}")


def conflict(reason: str) -> ApiError:
    """409 with Telegram's ``Conflict: `` prefix."""
    return ApiError(409, f"Conflict: {reason}")


def too_many_requests(retry_after: int) -> ApiError:
    """429 flood-wait answer including ``parameters.retry_after`` as Telegram sends it."""
    return ApiError(
        429,
        f"Too Many Requests: retry after {retry_after}",
        {"retry_after": retry_after},
    )


def unauthorized() -> ApiError:
    """Answer for a well-formed but unknown bot token."""
    return ApiError(401, "Unauthorized")


def not_found() -> ApiError:
    """Answer for an unknown method, malformed token or missing file."""
    return ApiError(404, "Not Found")


def entity_too_large() -> ApiError:
    """Answer for a request body above the Bot API's 50 MB upload limit."""
    return ApiError(413, "Request Entity Too Large")


# Descriptions used in more than one place, kept verbatim from Telegram.
CHAT_NOT_FOUND = "chat not found"
MESSAGE_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
WRONG_FILE_ID = "wrong file identifier/HTTP URL specified"
FILE_TOO_BIG = "file is too big"
REPLY_NOT_FOUND = "message to be replied not found"
