"""Sticker packs of a learned word: ``/pack mochi``, its delivery into sticker sets, and redo.

``/pack <word>`` (or a bare ``/pack`` replying to a message that names the word, such as the
bot's "I learned mochi"; see :func:`named_words`) queues one ``pack`` job
(:class:`oneword.jobs.PackPayload`); the worker draws the word in each of the model's
expressions, cut out with a white outline, and the status message shows which sticker it is
drawing. The delivery loop then puts the stickers into a
new sticker set of the requester's, ``<word>_<job id>_by_<bot>``, and the same pictures into a
custom emoji set, ``<word>_<job id>_emoji_by_<bot>``, and answers with both links and one
"redo" button per sticker. A redo is a pack job for one index with another seed; its delivery
replaces that sticker in both sets (replaceStickerInSet) and sends the new one.

Delivery may be tried again after a failure, so creating a set that already exists (an
earlier try made it) counts as done.
"""

from __future__ import annotations

import asyncio
import logging
import re
import zlib
from collections.abc import Sequence

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputSticker,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import StickerFormat, StickerType
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from oneword import jobs
from oneword.names import NAME_CHARS
from storage import InvalidConceptName, Job, LimitReached, StorageError, StoredConcept

from . import buttons, queueing, texts
from .services import Services, get_services

log = logging.getLogger(__name__)

MAX_SET_NAME = 64
MAX_TITLE = 64
_REDO = re.compile(rf"^{buttons.REDO}(\d):(\d{{1,18}})$")
REDO_PATTERN = _REDO.pattern
_WORDS = re.compile(rf"[{NAME_CHARS}]+")  # a message's words, as concept names are written


def set_names(word: str, job_id: int, bot_username: str) -> tuple[str, str]:
    """The pack's sticker set and custom emoji set names: letters, digits and single
    underscores, starting with a letter, ending ``_by_<bot>`` (Telegram's rules), 64 at most."""
    suffix = f"_{job_id}_by_{bot_username}"
    emoji_suffix = f"_{job_id}_emoji_by_{bot_username}"
    stem = re.sub(r"[^A-Za-z0-9]", "", word) or "word"
    if not stem[0].isalpha():
        stem = "w" + stem
    stem = stem[: max(1, MAX_SET_NAME - len(emoji_suffix))]
    return stem + suffix, stem + emoji_suffix


def redo_data(index: int, job_id: int) -> str:
    """Callback data of the button that redoes sticker ``index`` of pack job ``job_id``."""
    return buttons.data(f"{buttons.REDO}{index}", job_id)


def redo_keyboard(result: jobs.PackResult, job_id: int) -> InlineKeyboardMarkup:
    """One "redo" button per sticker, labelled with its emoji and expression, three a row."""
    keys = [InlineKeyboardButton(f"↻ {emoji} {name}", callback_data=redo_data(index, job_id))
            for index, emoji, name in zip(result.indexes, result.emojis, result.names,
                                          strict=True)]
    return InlineKeyboardMarkup([keys[i:i + 3] for i in range(0, len(keys), 3)])


def named_words(text: str, concepts: Sequence[StoredConcept]) -> list[StoredConcept]:
    """The concepts whose names ``text`` says as words (any case, quoted or not), in the order
    first said, each once; of concepts sharing a name, the first listed (the one
    :meth:`storage.concepts.ConceptRepo.get_visible` would pick, as ``list_visible`` orders
    them)."""
    by_name: dict[str, StoredConcept] = {}
    for concept in concepts:
        by_name.setdefault(concept.name.lower(), concept)
    found: dict[str, StoredConcept] = {}
    for word in _WORDS.findall(text.lower()):
        if word in by_name:
            found.setdefault(word, by_name[word])
    return list(found.values())


async def _word_of_reply(message: Message, services: Services, user_id: int,
                         chat_id: int) -> StoredConcept | None:
    """The word a bare ``/pack`` means: the one thing (not style) the replied message's text
    or caption names among the words this user may use here. Otherwise answers why not (no
    reply, no known word, only a style, several things) and returns None."""
    replied = message.reply_to_message
    if replied is None:
        await message.reply_text(texts.PACK_USAGE)
        return None
    visible = await services.store.concepts.list_visible(user_id=user_id, chat_id=chat_id)
    named = named_words(replied.text or replied.caption or "", visible)
    things = [c for c in named if c.kind != jobs.ConceptKind.STYLE]
    if len(things) == 1:
        return things[0]
    if things:
        await message.reply_text(texts.pack_which_word([c.name for c in things]))
    elif named:
        await message.reply_text(texts.pack_style(named[0].name))
    else:
        await message.reply_text(texts.pack_no_word_in_reply(
            [c.name for c in visible if c.kind != jobs.ConceptKind.STYLE]))
    return None


async def pack_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/pack <word>``: a sticker pack of a learned word (in private, or in a group); a bare
    ``/pack`` replying to a message takes the word that message names."""
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    if message is None or chat is None or user is None:
        return
    services = get_services(context)
    words = (message.text or message.caption or "").split()[1:]
    if len(words) > 1:
        await message.reply_text(texts.PACK_USAGE)
        return
    if not words:
        concept = await _word_of_reply(message, services, user.id, chat.id)
        if concept is None:
            return
    else:
        try:
            concept = await services.store.concepts.get_visible(words[0], user_id=user.id,
                                                                chat_id=chat.id)
        except InvalidConceptName:
            concept = None
        if concept is None:
            await message.reply_text(texts.pack_unknown_word(words[0]))
            return
    if concept.kind == jobs.ConceptKind.STYLE:
        await message.reply_text(texts.pack_style(concept.name))
        return
    key = queueing.request_key(jobs.JobKind.PACK, chat.id, message.message_id)
    if await services.store.jobs.find_request(key) is not None:
        return
    refusal = await queueing.check_active(services, user.id)
    if refusal is not None:
        await queueing.refuse_once_per_burst(services, message, user.id, refusal)
        return
    payload = jobs.PackPayload(concept_id=concept.id, word=concept.name)
    try:
        await queueing.submit(services, context.bot, kind=jobs.JobKind.PACK, chat_id=chat.id,
                              user_id=user.id, payload=jobs.to_json(payload),
                              reply_to=message.message_id, key=key, daily=True)
    except LimitReached as exc:
        await queueing.refuse_once_per_burst(services, message, user.id,
                                             queueing.limit_refusal(exc))


async def redo_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A "redo" button under a pack: draw that one sticker again and replace it in the sets."""
    query = update.callback_query
    if query is None:
        return
    match = _REDO.fullmatch(query.data or "")
    services = get_services(context)
    job = await buttons.job_for(query, services, jobs.JobKind.PACK) if match else None
    if job is None:
        if match is None:
            await query.answer(texts.STALE_BUTTON, show_alert=True)
        return
    payload = jobs.from_json(jobs.PackPayload, job.payload)
    index = int(match.group(1))
    if job.user_id != query.from_user.id:
        await query.answer(texts.PACK_NOT_YOURS, show_alert=True)
        return
    redo = jobs.PackPayload(concept_id=payload.concept_id, word=payload.word,
                            seed=zlib.crc32(query.id.encode()) % 1_000_000 + 1, redo=index,
                            pack_job=payload.pack_job or job.id)
    await queueing.submit_for_button(services, context.bot, query, kind=jobs.JobKind.PACK,
                                     payload=jobs.to_json(redo), done=texts.PACK_REDOING)


async def deliver_pack(bot: Bot, services: Services, job: Job,
                       reply: ReplyParameters | None) -> None:
    """Put a finished pack job's stickers into the requester's sets and tell the chat: a new
    pack creates both sets; a redo replaces its sticker in them. Raises what Telegram raises
    (the delivery loop decides what is permanent)."""
    result = jobs.from_json(jobs.PackResult, job.result)
    payload = jobs.from_json(jobs.PackPayload, job.payload)
    stickers = [await _read(services, path) for path in result.stickers]
    emoji = [await _read(services, path) for path in result.emoji]
    name, emoji_name = set_names(payload.word, payload.pack_job or job.id, bot.username)
    owner = job.user_id
    if payload.redo is not None:
        await _replace(bot, owner, name, result.indexes[0], stickers[0], result.emojis[0])
        await _replace(bot, owner, emoji_name, result.indexes[0], emoji[0], result.emojis[0])
        new = (await bot.get_sticker_set(name)).stickers[result.indexes[0]]
        await bot.send_sticker(job.chat_id, new.file_id, reply_parameters=reply)
        return
    title = texts.pack_title(payload.word)[:MAX_TITLE]
    await _create(bot, owner, name, title, stickers, result.emojis, StickerType.REGULAR)
    await _create(bot, owner, emoji_name, title, emoji, result.emojis,
                  StickerType.CUSTOM_EMOJI)
    first = (await bot.get_sticker_set(name)).stickers[0]
    await bot.send_sticker(job.chat_id, first.file_id, reply_parameters=reply)
    await bot.send_message(
        job.chat_id, texts.pack_ready(payload.word, len(stickers),
                                      f"https://t.me/addstickers/{name}",
                                      f"https://t.me/addemoji/{emoji_name}"),
        reply_markup=redo_keyboard(result, job.id), reply_parameters=reply)


async def _read(services: Services, path: str) -> bytes:
    try:
        return await asyncio.to_thread(services.store.files.read_bytes, path)
    except (OSError, StorageError) as exc:
        raise FileNotFoundError(f"pack file {path!r} unreadable: {exc}") from exc


async def _uploaded(bot: Bot, owner: int, data: bytes, emoji: str) -> InputSticker:
    uploaded = await bot.upload_sticker_file(owner, data, StickerFormat.STATIC)
    return InputSticker(uploaded.file_id, [emoji], StickerFormat.STATIC)


async def _create(bot: Bot, owner: int, name: str, title: str, files: list[bytes],
                  emojis: list[str], sticker_type: str) -> None:
    """Create a set of these stickers; one an earlier delivery try created is kept."""
    stickers = [await _uploaded(bot, owner, data, emoji)
                for data, emoji in zip(files, emojis, strict=True)]
    try:
        await bot.create_new_sticker_set(owner, name, title, stickers, sticker_type=sticker_type)
    except BadRequest as exc:
        if "occupied" not in exc.message.lower():
            raise
        log.info("sticker set %s exists already (an earlier delivery try)", name)


async def _replace(bot: Bot, owner: int, name: str, index: int, data: bytes,
                   emoji: str) -> None:
    """Put a new sticker in place ``index`` of a set."""
    old = (await bot.get_sticker_set(name)).stickers[index]
    sticker = await _uploaded(bot, owner, data, emoji)
    await bot.replace_sticker_in_set(owner, name, old.file_id, sticker)
