"""Bot-level methods: identity, updates, webhook, commands and chat info."""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import bad_request, conflict
from .common import Call, Handler

_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
# Telegram's Bot API server bounds a long poll to 50 s whatever timeout is asked for.
MAX_POLL_TIMEOUT_S = 50.0


async def get_me(call: Call) -> dict[str, Any]:
    """``getMe``."""
    return call.world.bot.get_me(call.world.privacy_mode)


async def ok(call: Call) -> bool:
    """``logOut`` / ``close``: nothing to do locally."""
    return True


async def get_updates(call: Call) -> list[dict[str, Any]]:
    """``getUpdates`` with ``offset``, ``limit`` and long-poll ``timeout``."""
    if call.world.config.webhook:
        raise conflict(
            "can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first"
        )
    params = call.params
    return await call.world.updates.get(
        offset=params.integer("offset", 0) or 0,
        limit=params.integer("limit", 100) or 100,
        timeout=min(max(params.number("timeout", 0.0) or 0.0, 0.0), MAX_POLL_TIMEOUT_S),
    )


async def set_webhook(call: Call) -> bool:
    """``setWebhook``: updates are then POSTed to the URL instead of being queued."""
    params = call.params
    url = params.string("url") or ""
    if not url:
        return await delete_webhook(call)
    if not url.startswith(("http://", "https://")):
        raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
    if params.flag("drop_pending_updates"):
        call.world.updates.clear()
    call.world.config.webhook = {
        "url": url,
        "secret_token": params.string("secret_token"),
        "max_connections": params.integer("max_connections", 40),
        "allowed_updates": params.obj("allowed_updates"),
    }
    call.world.updates.poke()
    return True


async def delete_webhook(call: Call) -> bool:
    """``deleteWebhook`` (``drop_pending_updates`` honoured)."""
    call.world.config.webhook = None
    if call.params.flag("drop_pending_updates"):
        call.world.updates.clear()
    call.world.updates.poke()
    return True


async def get_webhook_info(call: Call) -> dict[str, Any]:
    """``getWebhookInfo``."""
    hook = call.world.config.webhook or {}
    info: dict[str, Any] = {
        "url": hook.get("url", ""),
        "has_custom_certificate": False,
        "pending_update_count": call.world.updates.pending_count,
    }
    if hook:
        info["max_connections"] = hook.get("max_connections") or 40
        if hook.get("last_error_message"):
            info["last_error_date"] = hook["last_error_date"]
            info["last_error_message"] = hook["last_error_message"]
    return info


def _commands_key(call: Call) -> str:
    scope = call.params.obj("scope") or {"type": "default"}
    return json.dumps([scope, call.params.string("language_code") or ""], sort_keys=True)


async def set_my_commands(call: Call) -> bool:
    """``setMyCommands`` per scope and language."""
    commands = call.params.obj("commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("commands must be an array of at most 100 BotCommand")
    for command in commands:
        if not isinstance(command, dict) or not _COMMAND.match(str(command.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description", ""))) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    call.world.config.commands[_commands_key(call)] = [
        {"command": c["command"], "description": c["description"]} for c in commands
    ]
    return True


async def get_my_commands(call: Call) -> list[dict[str, Any]]:
    """``getMyCommands``."""
    return call.world.config.commands.get(_commands_key(call), [])


async def delete_my_commands(call: Call) -> bool:
    """``deleteMyCommands``."""
    call.world.config.commands.pop(_commands_key(call), None)
    return True


async def get_chat(call: Call) -> dict[str, Any]:
    """``getChat``: a ``ChatFullInfo``."""
    return call.world.find_chat(call.params.chat_id()).full_info()


async def get_chat_member(call: Call) -> dict[str, Any]:
    """``getChatMember``: creator/administrator/member/left from the chat's lists."""
    world = call.world
    chat = world.find_chat(call.params.chat_id())
    user_id = call.params.require_integer("user_id")
    if user_id == world.bot.id:
        user = world.bot.user
    elif user_id in world.users:
        user = world.users[user_id]
    else:
        raise bad_request("PARTICIPANT_ID_INVALID")
    if chat.is_private:
        status = "member" if user_id in (chat.id, world.bot.id) else "left"
    elif chat.admin_ids and user_id == chat.admin_ids[0]:
        status = "creator"
    elif user_id in chat.admin_ids:
        status = "administrator"
    else:
        status = "member" if user_id in chat.member_ids or user_id == world.bot.id else "left"
    member: dict[str, Any] = {"status": status, "user": user.to_json()}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update(_admin_rights())
    return member


def _admin_rights() -> dict[str, Any]:
    rights = (
        "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
        "can_restrict_members", "can_promote_members", "can_change_info",
        "can_invite_users", "can_post_stories", "can_edit_stories", "can_delete_stories",
    )
    return {"can_be_edited": False, "is_anonymous": False, **dict.fromkeys(rights, True)}


HANDLERS: dict[str, Handler] = {
    "getMe": get_me,
    "logOut": ok,
    "close": ok,
    "getUpdates": get_updates,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
    "setMyCommands": set_my_commands,
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
    "getChat": get_chat,
    "getChatMember": get_chat_member,
}
