"""The bot's process is light: `oneword bot` and `python -m bot` load no model stack, and the
bot's image (deploy/Dockerfile.bot) holds every first-party package the bot imports."""

from __future__ import annotations

import ast
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from botapi import BotApiServer
from botapi.client import ControlClient

ROOT = Path(__file__).resolve().parent.parent
MODEL_STACK = {"torch", "diffusers", "transformers", "accelerate", "safetensors", "numpy"}
FIRST_PARTY = {p.parent.name for p in ROOT.glob("*/__init__.py")}


def imported(importtime_log: str) -> set[str]:
    """Top-level names of every module a `python -X importtime` run imported."""
    return {line.rsplit("|", 1)[-1].strip().split(".")[0]
            for line in importtime_log.splitlines() if line.startswith("import time:")}


def copied_by(dockerfile: str) -> set[str]:
    """The folders a Dockerfile copies into its image."""
    return {line.split()[1] for line in (ROOT / "deploy" / dockerfile).read_text().splitlines()
            if line.startswith("COPY ") and (ROOT / line.split()[1]).is_dir()}


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 80, 40)).save(out, "JPEG")
    return out.getvalue()


@pytest.mark.slow  # starts processes or runs a whole pipeline
@pytest.mark.parametrize("entry", [("-m", "oneword", "bot"), ("-m", "bot")])
async def test_the_bot_process_loads_no_model(entry, tmp_path):
    log = tmp_path / "importtime.log"
    async with BotApiServer() as server, ControlClient(server.url) as tg:
        env = {**os.environ, "TELEGRAM_TOKEN": server.token, "ONEWORD_BASE_URL": server.base_url,
               "ONEWORD_BASE_FILE_URL": server.base_file_url,
               "ONEWORD_DATA_DIR": str(tmp_path / "data")}
        env.pop("ONEWORD_DATABASE_URL", None)
        with log.open("w") as stderr:
            process = subprocess.Popen([sys.executable, "-X", "importtime", *entry], env=env,
                                       stdout=subprocess.DEVNULL, stderr=stderr)
            try:
                alice = await tg.user("Alice")
                await alice.say("/help")
                await alice.wait_reply(contains="learn", timeout=60)
                await alice.send_photo(photo(), caption="replace dog with mochi")
                await alice.wait_reply(contains="mochi", timeout=60)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    modules = imported(log.read_text())
    assert {"telegram", "bot", "storage", "oneword", "PIL"} <= modules  # the log is complete
    assert not modules & MODEL_STACK
    # `oneword`'s parser reads the playground's and the benchmark's options where they are
    # installed and leaves their commands out where not (the bot's image)
    needed = modules & FIRST_PARTY - {"playground", "bench"}
    assert needed == copied_by("Dockerfile.bot") == {"oneword", "cli", "bot", "storage"}


def test_no_bot_module_imports_the_engine_or_the_worker():
    """Also the imports inside functions, which a short run may not reach."""
    for path in sorted((ROOT / "bot").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            heavy = [name for name in names
                     if name.split(".")[0] in MODEL_STACK | {"engine", "worker", "world"}]
            assert not heavy, f"bot/{path.name} imports {heavy}"
