"""Media methods: photos, documents, animations, stickers, albums, getFile, media edits."""

from __future__ import annotations

from typing import Any

from ..entities import utf16_len
from ..errors import bad_request
from ..files import StoredFile
from ..formatting import parse_text
from ..media import document_content, photo_content, sticker_json, store_document, store_sticker
from ..params import Upload
from .common import (
    MAX_CAPTION,
    Call,
    Handler,
    caption_fields,
    edit_target,
    input_file,
    markup_param,
    post_bot_message,
    reply_target,
    target_chat,
)
from .messages import MEDIA_KEYS, apply_edit


def _photo(call: Call, source: Upload | StoredFile) -> dict[str, Any]:
    if isinstance(source, Upload):
        return {"photo": photo_content(call.world.files, source.data)}
    return {"photo": call.world.files.photo_sizes(source.file_id)}


def _document(call: Call, source: Upload | StoredFile, animation: bool = False) -> dict[str, Any]:
    if isinstance(source, Upload):
        stored = store_document(call.world.files, source.data, source.filename,
                                source.content_type)
        if call.params.flag("disable_content_type_detection") and stored.kind == "animation":
            stored.kind = "document"
        if animation:
            stored.kind = "animation"
        return document_content(stored)
    return document_content(source)


async def _send(call: Call, content_key: str, build: Any) -> dict[str, Any]:
    chat = target_chat(call)
    content = build(call, input_file(call, content_key))
    content.update(caption_fields(call))
    if call.params.flag("has_spoiler"):
        content["has_media_spoiler"] = True
    message = post_bot_message(
        call, chat, content, markup=markup_param(call), reply_to=reply_target(call, chat)
    )
    return message.data


async def send_photo(call: Call) -> dict[str, Any]:
    """``sendPhoto``: upload (≤10 MB, real image) or ``file_id`` of a photo."""
    return await _send(call, "photo", _photo)


async def send_document(call: Call) -> dict[str, Any]:
    """``sendDocument``: any file; GIFs become animations unless detection is disabled."""
    return await _send(call, "document", _document)


async def send_animation(call: Call) -> dict[str, Any]:
    """``sendAnimation``: a GIF (stored as ``animation`` + ``document``)."""
    return await _send(call, "animation", lambda c, s: _document(c, s, animation=True))


async def send_sticker(call: Call) -> dict[str, Any]:
    """``sendSticker``: a WEBP/PNG upload or the ``file_id`` of a sticker."""
    chat = target_chat(call)
    source = input_file(call, "sticker")
    if isinstance(source, Upload):
        stored = store_sticker(call.world.files, source.data, strict=False,
                               emoji=call.params.string("emoji"))
    elif source.kind == "sticker":
        stored = source
    else:
        raise bad_request("type of file mismatch")
    message = post_bot_message(
        call, chat, {"sticker": sticker_json(stored)}, markup=markup_param(call),
        reply_to=reply_target(call, chat),
    )
    return message.data


def _album_item(call: Call, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or item.get("type") not in ("photo", "document"):
        raise bad_request("unsupported media type in album")
    source = input_file(call, "media", item.get("media"))
    content = _photo(call, source) if item["type"] == "photo" else _document(call, source)
    caption = item.get("caption")
    if caption:
        text, entities = (
            (caption, item["caption_entities"]) if item.get("caption_entities")
            else parse_text(caption, item.get("parse_mode"))
        )
        if utf16_len(text) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        content["caption"] = text
        if entities:
            content["caption_entities"] = entities
    return content


async def send_media_group(call: Call) -> list[dict[str, Any]]:
    """``sendMediaGroup``: 2–10 photos/documents sharing one ``media_group_id``."""
    media = call.params.obj("media")
    if not isinstance(media, list) or not 2 <= len(media) <= 10:
        raise bad_request("wrong number of media specified")
    chat = target_chat(call, messages=len(media))
    reply_to = reply_target(call, chat)
    contents = [_album_item(call, item) for item in media]
    group_id = call.world.ids.media_group_id()
    return [
        post_bot_message(call, chat, content, reply_to=reply_to,
                         extra={"media_group_id": group_id}).data
        for content in contents
    ]


async def get_file(call: Call) -> dict[str, Any]:
    """``getFile``: the File object with ``file_path`` (refused above 20 MB)."""
    return call.world.files.get_file(call.params.require_string("file_id"))


async def edit_message_media(call: Call) -> dict[str, Any]:
    """``editMessageMedia`` for photo and document messages."""
    message = edit_target(call)
    if not any(key in message.data for key in MEDIA_KEYS):
        raise bad_request("there is no media in the message to edit")
    media = call.params.obj("media")
    if not isinstance(media, dict):
        raise bad_request("can't parse InputMedia JSON object")
    content = _album_item(call, media)
    changes: dict[str, Any] = {key: None for key in MEDIA_KEYS}
    changes.update({"caption": None, "caption_entities": None})
    changes.update(content)
    return apply_edit(message, changes, markup_param(call))


HANDLERS: dict[str, Handler] = {
    "sendPhoto": send_photo,
    "sendDocument": send_document,
    "sendAnimation": send_animation,
    "sendSticker": send_sticker,
    "sendMediaGroup": send_media_group,
    "getFile": get_file,
    "editMessageMedia": edit_message_media,
}
