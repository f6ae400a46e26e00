"""What several test modules share: the sample pictures, the scenes they show, the settings
that make the service quick on the tiny model, and the service started through the one harness
(:mod:`playground.harness`) with those settings. Test modules import from here, never from each
other."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.services import Tuning
from botapi.client import ControlClient
from playground.harness import StackProcesses, running_stack

SAMPLES = Path(__file__).resolve().parent.parent / "engine" / "samples"
BOT_USERNAME = "oneword_test_bot"
SMALL_SCENE = "a big yellow square in the center with sky background"
SCENE = "a big red circle on the left and a small blue star on the right with grass background"

# The in-process bot's pace in tests: deliveries and albums settle quickly.
TUNING = Tuning(delivery_interval=0.1, album_wait=0.4)

# The bot and worker processes on the tiny model: few steps, short leases, quick polls.
QUICK_SETTINGS = {"ONEWORD_DEVICE": "cpu", "ONEWORD_LEARN_STEPS": "12",
                  "ONEWORD_INVERSION_STEPS": "5", "ONEWORD_WORKER_LEASE": "3",
                  "ONEWORD_WORKER_POLL": "0.1", "ONEWORD_PRIVATE_EDIT_INTERVAL": "0.2"}


def sample(path: str) -> bytes:
    """The bytes of a bundled sample picture, e.g. ``scenes/scene-1.png``."""
    return (SAMPLES / path).read_bytes()


async def learn(tg: ControlClient, user, name: str = "mochi"):
    """``user`` teaches the bot ``name`` from the four creature samples; the bot's answer."""
    await user.say(f"/learn {name}")
    await user.wait_reply(contains="photos", timeout=60)
    await user.send_album([sample(f"creature/creature-{i}.png") for i in range(1, 5)])
    return await user.wait_reply(contains="I learned", timeout=180)


def quick_stack(model_dir: Path, data_dir: Path, **env: str
                ) -> contextlib.AbstractAsyncContextManager[tuple[StackProcesses, ControlClient]]:
    """The bot and the worker on ``model_dir`` with the quick settings (and ``env``) against a
    fresh Bot API server in privacy mode; stopped cleanly at the end, where the bot token
    must be in no log."""
    return running_stack(model_dir, data_dir, settings={**QUICK_SETTINGS, **env},
                         privacy_mode=True)


@contextlib.asynccontextmanager
async def killed_at_exit(model_dir: Path, data_dir: Path, **env: str
                         ) -> AsyncIterator[tuple[StackProcesses, ControlClient]]:
    """As :func:`quick_stack`, but killed -9 at the end, since crash tests do not test a
    graceful stop."""
    async with running_stack(model_dir, data_dir, settings={**QUICK_SETTINGS, **env},
                             crash_at_exit=True, privacy_mode=True) as running:
        yield running


async def until(condition: Callable[[], Awaitable[Any]], what: str, timeout: float = 180) -> Any:
    """Wait for ``condition()`` to be true (checked every tenth of a second); fail after
    ``timeout`` seconds, a bound against a hang."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (found := await condition()):
        assert loop.time() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.1)
    return found
