"""Message media objects (photo, document, animation, sticker) built from stored files.

Both directions use these builders: a user sending a photo in a test and the bot calling
``sendPhoto`` produce the same Telegram JSON, so what a bot receives and what it sends are
described identically.
"""

from __future__ import annotations

from typing import Any

from . import images
from .errors import FILE_TOO_BIG, bad_request
from .files import FileStore, StoredFile

MAX_PHOTO_UPLOAD = 10 * 1024 * 1024
STICKER_THUMBNAIL_SIDE = 128
STICKER_SIDE = 512  # a set sticker's longer side
CUSTOM_EMOJI_SIDE = 100  # a custom emoji is this square
MAX_STATIC_STICKER_BYTES = 512 * 1024


def photo_content(files: FileStore, data: bytes) -> list[dict[str, Any]]:
    """Store a photo sent by the bot, enforcing Telegram's photo limits; returns ``photo``.

    Refusals are Telegram's: ``file is too big`` above 10 MB, ``IMAGE_PROCESS_FAILED`` for
    bytes that are not a whole image (text, truncated or corrupt files),
    ``PHOTO_INVALID_DIMENSIONS`` when width + height > 10000, the sides differ 20-fold or the
    header announces a decompression bomb. The same bytes are accepted by ``sendDocument``.
    """
    if len(data) > MAX_PHOTO_UPLOAD:
        raise bad_request(FILE_TOO_BIG)
    try:
        images.check_photo_dimensions(images.identify(data))
        return files.add_photo(data)
    except images.ImageProblem as exc:  # truncated, corrupt, not an image, bomb, odd sizes
        raise bad_request(exc.reason) from exc


def document_json(stored: StoredFile) -> dict[str, Any]:
    """The ``Document`` object for a stored file."""
    doc: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
    if stored.extra.get("thumbnail"):
        doc["thumbnail"] = stored.extra["thumbnail"]
    for key in ("file_name", "mime_type"):
        if getattr(stored, key):
            doc[key] = getattr(stored, key)
    doc["file_size"] = stored.size
    return doc


def animation_json(stored: StoredFile) -> dict[str, Any]:
    """The ``Animation`` object Telegram adds for GIFs (next to ``document``)."""
    anim = document_json(stored)
    anim.update(width=stored.width or 0, height=stored.height or 0, duration=1)
    return anim


def store_document(
    files: FileStore, data: bytes, file_name: str | None, mime_type: str | None
) -> StoredFile:
    """Store a document; image documents get a thumbnail and dimensions."""
    info = images.probe(data)
    if not mime_type or mime_type == "application/octet-stream":
        mime_type = info.mime_type if info else (mime_type or "application/octet-stream")
    is_gif = mime_type == "image/gif"
    stored = files.add(
        "animation" if is_gif else "document", data, file_name=file_name, mime_type=mime_type,
        width=info.width if info else None, height=info.height if info else None,
    )
    if info is not None:
        stored.extra["thumbnail"] = files.add_thumbnail(data)
    return stored


def document_content(stored: StoredFile) -> dict[str, Any]:
    """Message fields for a stored document: GIFs come as ``animation`` + ``document``."""
    if stored.kind == "animation":
        return {"animation": animation_json(stored), "document": document_json(stored)}
    if stored.kind not in ("document", "animation"):
        raise bad_request("type of file mismatch")
    return {"document": document_json(stored)}


def sticker_json(stored: StoredFile) -> dict[str, Any]:
    """The ``Sticker`` object for a stored static sticker."""
    sticker: dict[str, Any] = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "type": stored.extra.get("type", "regular"),
        "width": stored.width or 512,
        "height": stored.height or 512,
        "is_animated": False,
        "is_video": False,
    }
    for key in ("emoji", "set_name", "custom_emoji_id"):
        if stored.extra.get(key):
            sticker[key] = stored.extra[key]
    if stored.extra.get("thumbnail"):
        sticker["thumbnail"] = stored.extra["thumbnail"]
    sticker["file_size"] = stored.size
    return sticker


def fits_sticker_type(width: int, height: int, sticker_type: str) -> bool:
    """Telegram's static sizes: a custom emoji is exactly 100x100; any other set sticker has
    one side exactly 512 px and the other at most 512 px."""
    if sticker_type == "custom_emoji":
        return (width, height) == (CUSTOM_EMOJI_SIDE, CUSTOM_EMOJI_SIDE)
    return max(width, height) == STICKER_SIDE


def store_sticker(
    files: FileStore, data: bytes, *, strict: bool, emoji: str | None = None,
    sticker_type: str | None = "regular",
) -> StoredFile:
    """Store an image as a static sticker.

    ``strict`` applies sticker-set rules: PNG/WEBP of at most 512 KB, sized for
    ``sticker_type`` (:func:`fits_sticker_type`; None: for either kind of set, as
    ``uploadStickerFile`` takes files before their set is known); ``sendSticker`` uploads are
    accepted as any WEBP/PNG image.
    """
    info = images.probe(data)
    if info is None or info.format not in ("PNG", "WEBP"):
        raise bad_request("STICKER_PNG_NOPNG" if strict else "wrong file type")
    if strict and len(data) > MAX_STATIC_STICKER_BYTES:
        raise bad_request("file is too big")
    types = ("regular", "custom_emoji") if sticker_type is None else (sticker_type,)
    if strict and not any(fits_sticker_type(info.width, info.height, t) for t in types):
        raise bad_request("STICKER_PNG_DIMENSIONS")
    preview = images.thumbnail(data, STICKER_THUMBNAIL_SIDE)
    if preview is None:  # a header without whole pixel data: truncated or corrupt
        raise bad_request("STICKER_PNG_NOPNG" if strict else "wrong file type")
    stored = files.add(
        "sticker", data, mime_type=info.mime_type, width=info.width, height=info.height,
        file_name=f"sticker.{info.format.lower()}",
    )
    stored.extra["thumbnail"] = files.add_rendition("thumbnail", preview)
    if emoji:
        stored.extra["emoji"] = emoji
    return stored
