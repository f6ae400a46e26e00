"""``reply_markup`` validation and lookup of inline buttons.

Only inline keyboards are part of the sent ``Message`` object; reply keyboards and
``ReplyKeyboardRemove``/``ForceReply`` are accepted and remembered for the playground.
"""

from __future__ import annotations

from typing import Any

from .errors import bad_request

_BUTTON_ACTIONS = (
    "callback_data", "url", "switch_inline_query", "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat", "web_app", "login_url", "pay", "callback_game",
    "copy_text",
)

_TEXT_BUTTON = (
    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
)


def validate_markup(markup: Any) -> dict[str, Any] | None:
    """Check a decoded ``reply_markup``; returns it (or ``None`` when absent)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        _validate_inline(markup["inline_keyboard"])
    elif "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request("field \"keyboard\" must be an Array")
    elif not (markup.get("remove_keyboard") or markup.get("force_reply")):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return markup


def _validate_inline(rows: Any) -> None:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad_request(
            "field \"inline_keyboard\" of the InlineKeyboardMarkup should be an Array of Arrays"
        )
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise bad_request("can't parse inline keyboard button: text is empty")
            if not any(key in button for key in _BUTTON_ACTIONS):
                raise bad_request(_TEXT_BUTTON)
            data = button.get("callback_data")
            if "callback_data" in button and (
                not isinstance(data, str) or not 1 <= len(data.encode()) <= 64
            ):
                raise bad_request("BUTTON_DATA_INVALID")


def inline_markup(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    """The part of ``reply_markup`` that belongs in the Message object."""
    if markup and "inline_keyboard" in markup:
        return markup
    return None


def find_button(
    markup: dict[str, Any] | None, callback_data: str | None, text: str | None
) -> dict[str, Any] | None:
    """The first inline button matching ``callback_data`` and/or ``text``."""
    for row in (markup or {}).get("inline_keyboard", []):
        for button in row:
            if callback_data is not None and button.get("callback_data") != callback_data:
                continue
            if text is not None and button.get("text") != text:
                continue
            return button
    return None
