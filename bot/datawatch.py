"""Stopping the bot when the data under it vanished or was replaced.

The storage refuses every write once its data directory or database file is gone
(:mod:`storage.presence`); this module also looks every second, so an idle bot notices too, and
stops the bot with one clear log line and a failing exit code instead of answering users with
results nobody can keep.
"""

from __future__ import annotations

import logging
import os
import threading

from telegram.ext import Application, ContextTypes

from storage import DataGone
from storage.presence import CHECK_EVERY_S

from .services import get_services

log = logging.getLogger(__name__)

JOB_NAME = "data-watch"
STOPPED_KEY = "oneword.data_gone"  # in bot_data: why the bot stopped, once it did
EXIT_CODE = 1
STOP_GRACE_S = 30.0  # a clean stop that takes longer than this ends with the exit code at once


def watch_data(application: Application) -> None:
    """Check the data directory every :data:`CHECK_EVERY_S` seconds from now on."""
    assert application.job_queue is not None, "install python-telegram-bot[job-queue]"
    application.job_queue.run_repeating(_check, CHECK_EVERY_S, name=JOB_NAME)


async def _check(context: ContextTypes.DEFAULT_TYPE) -> None:
    try:
        get_services(context).store.check_present()
    except DataGone as exc:
        stop_for_lost_data(context.application, exc)


def stop_for_lost_data(application: Application, error: DataGone) -> None:
    """Log why (once) and make the running bot stop; :func:`stopped_for_lost_data` then says
    so, for the exit code."""
    if STOPPED_KEY in application.bot_data:
        return
    application.bot_data[STOPPED_KEY] = str(error)
    log.critical("bot stopped: %s; nothing more can be stored. Put the data directory back "
                 "(or point the bot at a new one) and start it again.", error)
    # The clean stop writes (persistence) and may meet the missing data on the way; whatever
    # it meets, the process ends, with the exit code that says why.
    guard = threading.Timer(STOP_GRACE_S, os._exit, args=(EXIT_CODE,))
    guard.daemon = True
    guard.start()
    application.stop_running()


def stopped_for_lost_data(application: Application) -> bool:
    """Whether the bot stopped because its data vanished."""
    return STOPPED_KEY in application.bot_data
