"""Stickers: /sticker on a photo, "Sticker" under an edit result, "Add to my set".

The worker cuts the photo's subject out as a 512 px WEBP (a ``sticker`` job with a
:class:`oneword.jobs.StickerPayload`); the delivery loop sends it with an "Add to my set"
button. Pressing it uploads the sticker (uploadStickerFile) and creates the presser's own set
``oneword_<user id>_by_<bot username>`` the first time (createNewStickerSet), or adds to it
(addStickerToSet) afterwards.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import CallbackQuery, InputSticker, ReplyParameters, Update, User
from telegram.constants import StickerFormat
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from oneword import jobs
from storage import Job

from . import buttons, photos, queueing, texts
from .services import Services, get_services

log = logging.getLogger(__name__)

STICKER_EMOJI = "✨"
MAX_TITLE = 64


def set_name(user_id: int, bot_username: str) -> str:
    """The user's own sticker set name (Telegram requires the ``_by_<bot>`` suffix)."""
    return f"oneword_{user_id}_by_{bot_username}"


def set_title(user: User) -> str:
    """A readable title for the user's set, within Telegram's 64 characters."""
    title = texts.STICKER_SET_TITLE.format(name=user.first_name)
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"


async def sticker_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/sticker [what the photo shows]`` as a reply to a photo (or as a photo's caption)."""
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    if message is None or chat is None or user is None:
        return
    services = get_services(context)
    source = message if photos.has_media(message) else message.reply_to_message
    ref = await photos.image_or_reply(message, source, texts.STICKER_NEEDS_PHOTO)
    if ref is None:
        return
    words = (message.text or message.caption or "").split()[1:]
    caption = " ".join(words)[:300] or None
    await queueing.submit_photo_job(
        services, context.bot, message, ref, kind=jobs.JobKind.STICKER, user_id=user.id,
        chat_id=chat.id, payload_for=lambda stored: jobs.StickerPayload(
            photo=stored.path, photo_key=ref.file_unique_id, caption=caption))


@buttons.job_button(jobs.JobKind.EDIT)
async def sticker_button(query: CallbackQuery, context: ContextTypes.DEFAULT_TYPE,
                         services: Services, job: Job) -> None:
    """"Sticker" under an edit result: a sticker job on the result picture."""
    assert query.message is not None
    try:
        image = jobs.from_json(jobs.EditResult, job.result).image
    except TypeError:  # no result: nothing to make a sticker of
        image = ""
    if not await asyncio.to_thread(photos.still_stored, services.store, image):
        await query.answer(texts.RESULT_GONE, show_alert=True)
        return
    key = f"result-{job.id}"
    message = query.message
    if getattr(message, "photo", None):
        key = message.photo[-1].file_unique_id  # type: ignore[union-attr]
    payload = jobs.StickerPayload(photo=image, photo_key=key, caption=None)
    await queueing.submit_for_button(services, context.bot, query, kind=jobs.JobKind.STICKER,
                                     payload=jobs.to_json(payload))


@buttons.job_button(jobs.JobKind.STICKER)
async def add_to_set_button(query: CallbackQuery, context: ContextTypes.DEFAULT_TYPE,
                            services: Services, job: Job) -> None:
    """"Add to my set": put the sticker into the presser's own set (made on first use)."""
    assert query.message is not None
    user, bot = query.from_user, context.bot
    found = await buttons.stored_result(query, services, job, jobs.StickerResult,
                                        lambda result: result.sticker, texts.RESULT_GONE)
    if found is None:
        return
    result, data = found
    await query.answer(texts.ADDING_TO_SET)
    name = set_name(user.id, bot.username)
    try:
        uploaded = await bot.upload_sticker_file(user.id, data, StickerFormat.STATIC)
        sticker = InputSticker(uploaded.file_id, [STICKER_EMOJI], StickerFormat.STATIC)
        created = not await _set_exists(context, name)
        if created:
            await bot.create_new_sticker_set(user.id, name, set_title(user), [sticker])
        else:
            await bot.add_sticker_to_set(user.id, name, sticker)
    except BadRequest as exc:
        log.info("sticker set %s: %s", name, exc.message)
        text = texts.STICKER_SET_FAILED.format(reason=exc.message)
    else:
        text = texts.sticker_added(f"https://t.me/addstickers/{name}", created)
    await bot.send_message(
        query.message.chat.id, text,
        reply_parameters=ReplyParameters(query.message.message_id,
                                         allow_sending_without_reply=True))


async def _set_exists(context: ContextTypes.DEFAULT_TYPE, name: str) -> bool:
    try:
        await context.bot.get_sticker_set(name)
    except BadRequest as exc:
        if "invalid" in exc.message.lower() or "not found" in exc.message.lower():
            return False
        raise
    return True
