"""Inline buttons under results and their callback data.

Telegram allows 64 bytes of ``callback_data``: too little for file ids or prompts, so a button
carries only an action and a job id (``"why:1234"``); the handler reads the rest from the job
(:func:`job_for`), after checking it belongs to the chat the button was pressed in.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from oneword import jobs
from storage import Job, JobNotFound, JobState, StorageError

from . import texts
from .services import Services, get_services

WHY = "why"  # send the attention maps of an edit
STICKER = "stk"  # make a sticker of an edit result
AGAIN = "again"  # the same edit with a new seed
ADD_TO_SET = "set"  # put a sticker into the presser's own set
REDO = "redo"  # "redo<index>": draw sticker <index> of a pack again (bot/packs.py)
ACTIONS = (WHY, STICKER, AGAIN, ADD_TO_SET) + tuple(f"{REDO}{i}" for i in range(10))
_DATA = re.compile(r"(?P<action>[a-z]+\d?):(?P<job>\d{1,18})")
R = TypeVar("R")


def pattern(action: str) -> str:
    """Regex for :class:`telegram.ext.CallbackQueryHandler` matching one action."""
    return rf"^{action}:\d{{1,18}}$"


def data(action: str, job_id: int) -> str:
    """Callback data for a button about ``job_id`` (always well under 64 bytes)."""
    return f"{action}:{job_id}"


def parse(raw: str | None) -> tuple[str, int] | None:
    """``(action, job_id)`` from callback data, None if it is not ours."""
    match = _DATA.fullmatch(raw or "")
    if match is None or match["action"] not in ACTIONS:
        return None
    return match["action"], int(match["job"])


def result_keyboard(job_id: int) -> InlineKeyboardMarkup:
    """Buttons under an edit result."""
    return InlineKeyboardMarkup([[
        InlineKeyboardButton("Why?", callback_data=data(WHY, job_id)),
        InlineKeyboardButton("Sticker", callback_data=data(STICKER, job_id)),
        InlineKeyboardButton("Another take", callback_data=data(AGAIN, job_id)),
    ]])


def sticker_keyboard(job_id: int) -> InlineKeyboardMarkup:
    """The button under a sticker."""
    return InlineKeyboardMarkup([[
        InlineKeyboardButton("Add to my set", callback_data=data(ADD_TO_SET, job_id)),
    ]])


async def job_for(query: CallbackQuery, services: Services, kind: str) -> Job | None:
    """The finished job a result button refers to, if it belongs to this chat; else answers
    the query with a polite "no longer works" and returns None."""
    parsed = parse(query.data)
    job = None
    if parsed is not None and query.message is not None:
        try:
            job = await services.store.jobs.get(parsed[1])
        except JobNotFound:
            job = None
    if (job is None or query.message is None or job.chat_id != query.message.chat.id
            or job.kind != kind or job.state is not JobState.DONE or not job.result):
        await query.answer(texts.STALE_BUTTON, show_alert=True)
        return None
    return job


JobButtonHandler = Callable[[CallbackQuery, ContextTypes.DEFAULT_TYPE, Services, Job],
                            Awaitable[None]]


def job_button(kind: str) -> Callable[[JobButtonHandler], Callable]:
    """Decorate a result button's handler: it runs with the query, the context, the services and
    the finished job the button belongs to; stale presses are answered politely instead."""
    def decorate(handler: JobButtonHandler) -> Callable:
        @functools.wraps(handler)
        async def run(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            query = update.callback_query
            if query is None:
                return
            services = get_services(context)
            job = await job_for(query, services, kind)
            if job is not None:
                await handler(query, context, services, job)
        return run
    return decorate


async def stored_result(query: CallbackQuery, services: Services, job: Job, kind: type[R],
                        file_of: Callable[[R], str], gone: str) -> tuple[R, bytes] | None:
    """A finished job's result (of type ``kind``) and the bytes of the stored file ``file_of``
    names in it; None, the press answered with ``gone``, when either is no longer there (the
    retention period removed the file, or the job has no result)."""
    try:
        result = jobs.from_json(kind, job.result)
        data = await asyncio.to_thread(services.store.files.read_bytes, file_of(result))
    except (OSError, StorageError, TypeError):
        await query.answer(gone, show_alert=True)
        return None
    return result, data
