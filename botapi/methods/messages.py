"""Text message methods: send, edit, delete, chat actions and callback answers."""

from __future__ import annotations

from typing import Any

from ..errors import MESSAGE_NOT_MODIFIED, bad_request, forbidden
from ..keyboards import inline_markup
from ..messages import StoredMessage
from .common import (
    MAX_TEXT,
    Call,
    Handler,
    caption_fields,
    edit_target,
    formatted_text,
    markup_param,
    post_bot_message,
    reply_target,
    target_chat,
)

CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})
MEDIA_KEYS = ("photo", "document", "animation", "video", "audio", "voice")


async def send_message(call: Call) -> dict[str, Any]:
    """``sendMessage``."""
    chat = target_chat(call)
    text, entities = formatted_text(call, "text", "entities", MAX_TEXT, required=True)
    content: dict[str, Any] = {"text": text}
    if entities:
        content["entities"] = entities
    link_preview = call.params.obj("link_preview_options")
    if isinstance(link_preview, dict) and link_preview:
        content["link_preview_options"] = link_preview
    message = post_bot_message(
        call, chat, content, markup=markup_param(call), reply_to=reply_target(call, chat)
    )
    return message.data


def apply_edit(
    message: StoredMessage, changes: dict[str, Any], markup: dict[str, Any] | None
) -> dict[str, Any]:
    """Apply an edit unless nothing changes (then Telegram's "not modified" 400)."""
    inline = inline_markup(markup)
    unchanged = all(message.data.get(k) == v for k, v in changes.items() if v is not None)
    removed = tuple(k for k, v in changes.items() if v is None and k in message.data)
    if unchanged and not removed and message.data.get("reply_markup") == inline:
        raise bad_request(MESSAGE_NOT_MODIFIED)
    updates = {k: v for k, v in changes.items() if v is not None}
    drop = removed + (("reply_markup",) if inline is None else ())
    if inline is not None:
        updates["reply_markup"] = inline
    message.edit(updates, drop)
    return message.data


async def edit_message_text(call: Call) -> dict[str, Any]:
    """``editMessageText`` (removes the inline keyboard unless one is passed again)."""
    message = edit_target(call)
    if "text" not in message.data:
        raise bad_request("there is no text in the message to edit")
    text, entities = formatted_text(call, "text", "entities", MAX_TEXT, required=True)
    changes = {"text": text, "entities": entities or None}
    return apply_edit(message, changes, markup_param(call))


async def edit_message_caption(call: Call) -> dict[str, Any]:
    """``editMessageCaption`` (an absent caption removes it)."""
    message = edit_target(call)
    if not any(key in message.data for key in MEDIA_KEYS):
        raise bad_request("there is no caption in the message to edit")
    fields = caption_fields(call)
    changes = {
        "caption": fields.get("caption"),
        "caption_entities": fields.get("caption_entities"),
    }
    return apply_edit(message, changes, markup_param(call))


async def edit_message_reply_markup(call: Call) -> dict[str, Any]:
    """``editMessageReplyMarkup``."""
    message = edit_target(call)
    return apply_edit(message, {}, markup_param(call))


async def delete_message(call: Call) -> bool:
    """``deleteMessage``: marks the message deleted (it stays visible to the control API)."""
    world = call.world
    chat = world.find_chat(call.params.chat_id())
    message = world.messages.live(chat.id, call.params.require_integer("message_id"))
    if message is None:
        raise bad_request("message to delete not found")
    if not (message.from_bot or chat.is_private or world.bot.id in chat.admin_ids):
        raise bad_request("message can't be deleted")
    message.deleted = True
    return True


async def delete_messages(call: Call) -> bool:
    """``deleteMessages``: deletes what exists, silently skipping the rest."""
    world = call.world
    chat = world.find_chat(call.params.chat_id())
    ids = call.params.obj("message_ids") or []
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
        raise bad_request("message_ids is empty")
    if not all(isinstance(i, int | str) and str(i).lstrip("-").isdigit() for i in ids):
        raise bad_request("can't parse message_ids JSON array")
    for message_id in ids:
        message = world.messages.live(chat.id, int(message_id))
        if message is not None:
            message.deleted = True
    return True


async def send_chat_action(call: Call) -> bool:
    """``sendChatAction``: recorded for tests."""
    chat = call.world.find_chat(call.params.chat_id())
    action = call.params.string("action") or ""
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    if chat.blocked:
        raise forbidden("bot was blocked by the user")
    call.world.record_chat_action(chat.id, action)
    return True


async def answer_callback_query(call: Call) -> bool:
    """``answerCallbackQuery``: exactly one answer per query."""
    params = call.params
    text = params.string("text")
    if text is not None and len(text) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    call.world.callbacks.answer(params.require_string("callback_query_id"), {
        "text": text,
        "show_alert": params.flag("show_alert"),
        "url": params.string("url"),
        "cache_time": params.integer("cache_time", 0),
    })
    return True


HANDLERS: dict[str, Handler] = {
    "sendMessage": send_message,
    "editMessageText": edit_message_text,
    "editMessageCaption": edit_message_caption,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "deleteMessages": delete_messages,
    "sendChatAction": send_chat_action,
    "answerCallbackQuery": answer_callback_query,
}
