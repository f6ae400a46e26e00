"""Shared pieces of bot method handlers: the call context and outgoing message building."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..entities import utf16_len
from ..errors import REPLY_NOT_FOUND, bad_request, forbidden
from ..files import StoredFile
from ..formatting import parse_text
from ..keyboards import inline_markup, validate_markup
from ..messages import StoredMessage
from ..models import Chat
from ..params import Params, Upload
from ..state import World

MAX_TEXT = 4096
MAX_CAPTION = 1024


@dataclass
class Call:
    """One bot method invocation: the world it acts on, its parameters and its name."""

    world: World
    params: Params
    method: str


Handler = Callable[[Call], Awaitable[Any]]


def target_chat(call: Call, messages: int = 1) -> Chat:
    """The chat a send method targets, after block and flood checks."""
    chat = call.world.find_chat(call.params.chat_id())
    if chat.blocked:
        raise forbidden("bot was blocked by the user")
    call.world.limits.check_flood(call.method, chat.id, chat.is_private, messages)
    return chat


def reply_target(call: Call, chat: Chat) -> dict[str, Any] | None:
    """The ``reply_to_message`` snapshot from ``reply_parameters`` / ``reply_to_message_id``."""
    params = call.params
    reply = params.obj("reply_parameters")
    if reply is not None and not isinstance(reply, dict):
        raise bad_request("can't parse reply parameters JSON object")
    if isinstance(reply, dict):
        message_id = reply.get("message_id")
        allow_missing = bool(reply.get("allow_sending_without_reply"))
        other_chat = reply.get("chat_id")
        if not isinstance(message_id, int | None) or not isinstance(other_chat, int | str | None):
            raise bad_request("can't parse reply parameters JSON object")
        if other_chat is not None:
            chat = call.world.find_chat(Params({"chat_id": other_chat}).chat_id())
    else:
        message_id = params.integer("reply_to_message_id")
        allow_missing = params.flag("allow_sending_without_reply")
    if message_id is None:
        return None
    replied = call.world.messages.live(chat.id, int(message_id))
    if replied is None:
        if allow_missing:
            return None
        raise bad_request(REPLY_NOT_FOUND)
    return replied.snapshot()


def formatted_text(
    call: Call, key: str, entities_key: str, limit: int, *, required: bool
) -> tuple[str | None, list[dict[str, Any]]]:
    """Text or caption after ``parse_mode`` / explicit entities, with length checks."""
    params = call.params
    raw = params.string(key)
    if raw is None or raw == "":
        if required:
            raise bad_request("message text is empty")
        return None, []
    given = params.obj(entities_key)
    if isinstance(given, list):
        text, entities = raw, given
    else:
        text, entities = parse_text(raw, params.string("parse_mode"))
    if required and not text.strip():
        raise bad_request("message text is empty")
    if utf16_len(text) > limit:
        raise bad_request("message is too long" if key == "text" else "message caption is too long")
    return text, entities


def caption_fields(call: Call) -> dict[str, Any]:
    """``caption`` and ``caption_entities`` message fields, if a caption was given."""
    caption, entities = formatted_text(
        call, "caption", "caption_entities", MAX_CAPTION, required=False
    )
    fields: dict[str, Any] = {}
    if caption is not None:
        fields["caption"] = caption
        if entities:
            fields["caption_entities"] = entities
    return fields


def markup_param(call: Call) -> dict[str, Any] | None:
    """The validated ``reply_markup`` parameter (any kind), or ``None``."""
    return validate_markup(call.params.obj("reply_markup"))


def post_bot_message(
    call: Call, chat: Chat, content: dict[str, Any], *,
    markup: dict[str, Any] | None = None, reply_to: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> StoredMessage:
    """Store a message sent by the bot and return it (its ``data`` is the API result)."""
    world = call.world
    message_id = world.messages.next_id(chat.id)
    data: dict[str, Any] = {
        "message_id": message_id,
        "from": world.bot.user.to_json(),
        "chat": chat.to_json(),
        "date": int(time.time()),
    }
    if reply_to is not None:
        data["reply_to_message"] = reply_to
    data.update(extra or {})
    data.update(content)
    inline = inline_markup(markup)
    if inline is not None:
        data["reply_markup"] = inline
    if call.params.flag("protect_content"):
        data["has_protected_content"] = True
    stored = StoredMessage(chat.id, message_id, data, from_bot=True)
    if markup is not None and inline is None:
        stored.reply_keyboard = markup
    return world.messages.add(stored)


def input_file(call: Call, name: str, value: Any = None) -> Upload | StoredFile:
    """Resolve a file parameter: a multipart upload, ``attach://<part>`` or a ``file_id``."""
    params = call.params
    if value is None:
        upload = params.upload(name)
        if upload is not None:
            return _non_empty(upload)
        value = params.string(name)
    if not value:
        raise bad_request(f"there is no {name} in the request")
    if not isinstance(value, str):
        raise bad_request(f"can't parse {name}")
    if value.startswith("attach://"):
        upload = params.upload(value[len("attach://"):])
        if upload is None:
            raise bad_request(f"can't find attached file \"{value[len('attach://'):]}\"")
        return _non_empty(upload)
    if value.startswith(("http://", "https://")):
        raise bad_request("failed to get HTTP URL content")
    return call.world.files.require(value)


def _non_empty(upload: Upload) -> Upload:
    if not upload.data:
        raise bad_request("file must be non-empty")
    return upload


def edit_target(call: Call) -> StoredMessage:
    """The bot message an ``editMessage*`` call refers to."""
    if call.params.has("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    chat = call.world.find_chat(call.params.chat_id())
    message = call.world.messages.live(chat.id, call.params.require_integer("message_id"))
    if message is None:
        raise bad_request("message to edit not found")
    if not message.from_bot:
        raise bad_request("message can't be edited")
    return message
