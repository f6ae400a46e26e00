"""Pictures people send: find them in a message, download them safely, store them.

Checks happen twice. Before downloading, from what the update says (a photo, or a document
with an image MIME type; no animations; ``file_size`` within Telegram's 20 MB bot download
limit). After downloading, on the bytes themselves: Pillow must decode the whole picture, it
must be a still image in a known format, and its pixel count and sides must be sane. Every
refusal is a :class:`PhotoRefused` whose message can be shown to the user as is.
"""

from __future__ import annotations

import asyncio
import io
import logging

from PIL import Image, UnidentifiedImageError
from telegram import Bot, Message
from telegram.error import BadRequest

from oneword.limits import IMAGE_LIMITS
from storage import Area, FileTooLarge, MediaKind, Storage, StorageError

from . import texts
from .services import ImageRef, StoredPhoto

log = logging.getLogger(__name__)

SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tiff"}


class PhotoRefused(Exception):
    """A picture that cannot be used; ``str(exc)`` is a polite explanation."""


def image_in(message: Message | None) -> ImageRef | None:
    """The picture a message carries, None if it carries no media at all.

    Raises :class:`PhotoRefused` for media that is not a usable still picture or is too big.
    """
    if message is None:
        return None
    if message.animation is not None:
        raise PhotoRefused(texts.NO_ANIMATIONS)
    if message.photo:
        size = message.photo[-1]
        ref = ImageRef(size.file_id, size.file_unique_id, size.file_size)
    elif message.document is not None:
        mime = (message.document.mime_type or "").lower()
        if mime == "image/gif":
            raise PhotoRefused(texts.NO_ANIMATIONS)
        if not mime.startswith("image/"):
            raise PhotoRefused(texts.NOT_AN_IMAGE)
        doc = message.document
        ref = ImageRef(doc.file_id, doc.file_unique_id, doc.file_size, as_file=True)
    elif message.sticker is not None:
        raise PhotoRefused(texts.NO_STICKERS)
    elif message.video or message.video_note or message.audio or message.voice:
        raise PhotoRefused(texts.NOT_AN_IMAGE)
    else:
        return None
    if ref.file_size is not None and ref.file_size > IMAGE_LIMITS.max_bytes:
        raise PhotoRefused(texts.too_big(IMAGE_LIMITS.max_bytes // 2**20))
    return ref


async def image_or_reply(message: Message, source: Message | None, missing: str) -> ImageRef | None:
    """The picture in ``source``, or None after answering ``message`` with why there is none.

    The answer is the refusal's own explanation, or ``missing`` when ``source`` has no media.
    """
    try:
        ref = image_in(source)
    except PhotoRefused as exc:
        await message.reply_text(str(exc))
        return None
    if ref is None:
        await message.reply_text(missing)
    return ref


def has_media(message: Message) -> bool:
    """True if the message carries any file (usable or not)."""
    return any((message.photo, message.document, message.animation, message.sticker,
                message.video, message.video_note, message.audio, message.voice))


async def download(bot: Bot, ref: ImageRef) -> bytes:
    """The file's bytes, refusing anything above the download limit."""
    try:
        file = await bot.get_file(ref.file_id)
    except BadRequest as exc:
        if "too big" in exc.message.lower():
            raise PhotoRefused(texts.too_big(IMAGE_LIMITS.max_bytes // 2**20)) from None
        raise
    if file.file_size is not None and file.file_size > IMAGE_LIMITS.max_bytes:
        raise PhotoRefused(texts.too_big(IMAGE_LIMITS.max_bytes // 2**20))
    data = bytes(await file.download_as_bytearray())
    if len(data) > IMAGE_LIMITS.max_bytes:
        raise PhotoRefused(texts.too_big(IMAGE_LIMITS.max_bytes // 2**20))
    return data


def inspect(data: bytes) -> str:
    """Decode ``data`` completely and return the file suffix for its format.

    Raises :class:`PhotoRefused` for non-images, animations, damaged files and pictures that
    are too large or too small. CPU-bound: run it in a thread.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            width, height = image.size
            if fmt == "GIF" or getattr(image, "n_frames", 1) > 1:
                raise PhotoRefused(texts.NO_ANIMATIONS)
            if fmt not in SUFFIXES:
                raise PhotoRefused(texts.NOT_AN_IMAGE)
            if width * height > IMAGE_LIMITS.max_pixels:
                raise PhotoRefused(texts.too_many_pixels(IMAGE_LIMITS.max_pixels // 1_000_000))
            if min(width, height) < IMAGE_LIMITS.min_side:
                raise PhotoRefused(texts.too_small(IMAGE_LIMITS.min_side))
            image.load()
    except PhotoRefused:
        raise
    except Image.DecompressionBombError:
        raise PhotoRefused(texts.too_many_pixels(IMAGE_LIMITS.max_pixels // 1_000_000)) from None
    except UnidentifiedImageError:
        raise PhotoRefused(texts.NOT_AN_IMAGE) from None
    except (OSError, ValueError, SyntaxError):
        raise PhotoRefused(texts.BROKEN_IMAGE) from None
    return SUFFIXES[fmt]


async def fetch(bot: Bot, store: Storage, ref: ImageRef, *, user_id: int, chat_id: int,
                reuse: bool = True) -> StoredPhoto:
    """Download, check and store a picture; record it as the user's photo.

    With ``reuse``, a copy this user sent before and that is still on disk (and not a learned
    concept's training photo) is used instead of downloading again.
    """
    if reuse:
        known = await store.media.find(user_id=user_id, file_unique_id=ref.file_unique_id)
        if known is not None and known.concept_id is None:
            return StoredPhoto(known.path, known.id, ref.file_unique_id)
    data = await download(bot, ref)
    suffix = await asyncio.to_thread(inspect, data)
    try:
        path = await asyncio.to_thread(store.files.store_bytes, Area.PHOTOS, data, suffix)
    except FileTooLarge:  # the shared database takes smaller files than Telegram sends
        limit = store.files.blobs.max_bytes if store.files.blobs else IMAGE_LIMITS.max_bytes
        raise PhotoRefused(texts.too_big(limit // 2**20)) from None
    try:
        media = await store.media.add(path, MediaKind.PHOTO, user_id=user_id, chat_id=chat_id,
                                      file_unique_id=ref.file_unique_id)
    except BaseException:
        store.files.delete(path)
        raise
    return StoredPhoto(path, media.id, ref.file_unique_id)


def still_stored(store: Storage, path: str) -> bool:
    """True if ``path`` is a storage-made path whose file still exists (blocking: use a
    thread)."""
    try:
        return store.files.exists(path)
    except StorageError:  # UnsafePath: not a path the storage made
        return False
