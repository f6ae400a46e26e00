"""Sticker set methods: upload, create, add, get, delete, retitle."""

from __future__ import annotations

from typing import Any

from ..errors import bad_request
from ..files import StoredFile
from ..media import store_sticker
from ..params import Upload
from ..stickers import MAX_INITIAL_STICKERS
from .common import Call, Handler, input_file


def _owner(call: Call) -> int:
    user_id = call.params.require_integer("user_id")
    if user_id not in call.world.users:
        raise bad_request("user not found")
    return user_id


def _check_format(sticker_format: str | None) -> None:
    if sticker_format not in (None, "", "static"):
        raise bad_request(f"sticker format \"{sticker_format}\" is not supported by this server")


def _set_sticker(call: Call, spec: Any, sticker_type: str) -> StoredFile:
    """Store the sticker of an ``InputSticker`` with the rules of a set of ``sticker_type``."""
    if not isinstance(spec, dict) or "sticker" not in spec:
        raise bad_request("can't parse InputSticker JSON object")
    _check_format(spec.get("format"))
    emoji_list = spec.get("emoji_list") or []
    if not isinstance(emoji_list, list) or not 1 <= len(emoji_list) <= 20:
        raise bad_request("STICKER_EMOJI_INVALID")
    source = input_file(call, "sticker", spec["sticker"])
    data = source.data
    if isinstance(source, StoredFile) and source.kind != "sticker":
        raise bad_request("type of file mismatch")
    return store_sticker(call.world.files, data, strict=True, emoji=emoji_list[0],
                         sticker_type=sticker_type)


async def upload_sticker_file(call: Call) -> dict[str, Any]:
    """``uploadStickerFile``: validated static sticker; returns its File object."""
    _owner(call)
    _check_format(call.params.string("sticker_format"))
    source = input_file(call, "sticker")
    if not isinstance(source, Upload):
        raise bad_request("sticker must be uploaded as a file")
    return store_sticker(call.world.files, source.data, strict=True,
                         sticker_type=None).file_json()


async def create_new_sticker_set(call: Call) -> bool:
    """``createNewStickerSet``: name must end with ``_by_<bot username>``."""
    params = call.params
    owner = _owner(call)
    name = params.require_string("name")
    call.world.stickers.validate_name(name)
    sticker_type = params.string("sticker_type") or "regular"
    call.world.stickers.validate_type(sticker_type)
    specs = params.obj("stickers")
    if not isinstance(specs, list) or not specs:
        raise bad_request("stickers must be a non-empty array")
    if len(specs) > MAX_INITIAL_STICKERS:
        raise bad_request("STICKERS_TOO_MUCH")
    stickers = [_set_sticker(call, spec, sticker_type) for spec in specs]
    sticker_set = call.world.stickers.create(
        name, params.require_string("title"), owner, sticker_type
    )
    for sticker in stickers:
        call.world.stickers.add(sticker_set, sticker)
    return True


async def add_sticker_to_set(call: Call) -> bool:
    """``addStickerToSet``: only the set's owner may add."""
    owner = _owner(call)
    sticker_set = call.world.stickers.require(call.params.require_string("name"))
    if sticker_set.owner_id != owner:
        raise bad_request("STICKERSET_INVALID")
    call.world.stickers.add(sticker_set, _set_sticker(call, call.params.obj("sticker"),
                                                      sticker_set.sticker_type))
    return True


async def replace_sticker_in_set(call: Call) -> bool:
    """``replaceStickerInSet``: the owner puts a new sticker in an old one's place."""
    owner = _owner(call)
    sticker_set = call.world.stickers.require(call.params.require_string("name"))
    if sticker_set.owner_id != owner:
        raise bad_request("STICKERSET_INVALID")
    old = call.params.require_string("old_sticker")
    new = _set_sticker(call, call.params.obj("sticker"), sticker_set.sticker_type)
    call.world.stickers.replace(sticker_set, old, new)
    return True


async def get_sticker_set(call: Call) -> dict[str, Any]:
    """``getStickerSet``."""
    return call.world.stickers.require(call.params.require_string("name")).to_json()


async def delete_sticker_from_set(call: Call) -> bool:
    """``deleteStickerFromSet`` by the sticker's ``file_id``."""
    file_id = call.params.require_string("sticker")
    sticker_set = call.world.stickers.find_sticker(file_id)
    if sticker_set is None:
        raise bad_request("STICKERSET_INVALID")
    sticker_set.stickers = [s for s in sticker_set.stickers if s.file_id != file_id]
    return True


async def delete_sticker_set(call: Call) -> bool:
    """``deleteStickerSet``."""
    call.world.stickers.delete(call.params.require_string("name"))
    return True


async def set_sticker_set_title(call: Call) -> bool:
    """``setStickerSetTitle``."""
    title = call.params.require_string("title")
    if len(title) > 64:
        raise bad_request("invalid sticker set title is specified")
    call.world.stickers.require(call.params.require_string("name")).title = title
    return True


HANDLERS: dict[str, Handler] = {
    "uploadStickerFile": upload_sticker_file,
    "createNewStickerSet": create_new_sticker_set,
    "addStickerToSet": add_sticker_to_set,
    "replaceStickerInSet": replace_sticker_in_set,
    "getStickerSet": get_sticker_set,
    "deleteStickerFromSet": delete_sticker_from_set,
    "deleteStickerSet": delete_sticker_set,
    "setStickerSetTitle": set_sticker_set_title,
}
