"""`oneword bot` that cannot start says why in one line, exits with 1 and never shows the token.

Each test runs the real process: without a token, against a port where nothing listens (no
network), and against our Bot API server, which rejects a token it does not know.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from botapi import BotApiServer

ROOT = Path(__file__).resolve().parents[1]
WRONG_TOKEN = "987654321:AAWrongWrongWrongWrongWrongWrongWro"  # the shape of a real one


pytestmark = pytest.mark.slow  # each test starts the real bot process


def service_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """This environment without any bot settings of the developer's, plus ``settings``."""
    env = {k: v for k, v in os.environ.items()
           if k != "TELEGRAM_TOKEN" and not k.startswith("ONEWORD_")}
    return {**env, "PYTHONPATH": str(ROOT), "ONEWORD_DATA_DIR": str(data_dir), **settings}


def closed_port() -> int:
    """A local port where nothing listens (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_line_without_token(output: str, returncode: int, *, says: str) -> None:
    lines = output.strip().splitlines()
    assert returncode == 1, output
    assert len(lines) == 1 and lines[0].startswith("oneword bot: "), output
    assert says in lines[0], output
    assert WRONG_TOKEN not in output and WRONG_TOKEN.split(":")[1] not in output


def run_bot(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oneword", "bot"], env=env, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=120)


def test_no_token(tmp_path):
    done = run_bot(service_env(tmp_path))
    assert_one_line_without_token(done.stdout, done.returncode, says="set TELEGRAM_TOKEN")


def test_no_network(tmp_path):
    port = closed_port()
    done = run_bot(service_env(tmp_path, TELEGRAM_TOKEN=WRONG_TOKEN,
                               ONEWORD_BASE_URL=f"http://127.0.0.1:{port}/bot",
                               ONEWORD_BASE_FILE_URL=f"http://127.0.0.1:{port}/file/bot"))
    assert_one_line_without_token(done.stdout, done.returncode,
                                  says=f"cannot reach the Bot API at 127.0.0.1:{port}")


async def test_a_token_the_server_rejects(server: BotApiServer, tmp_path):
    env = service_env(tmp_path, TELEGRAM_TOKEN=WRONG_TOKEN, ONEWORD_BASE_URL=server.base_url,
                      ONEWORD_BASE_FILE_URL=server.base_file_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "oneword", "bot", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert_one_line_without_token(output.decode(), process.returncode,
                                  says="rejected the bot token")


def test_a_setting_that_cannot_be_used(tmp_path):
    for service in ("bot", "worker"):
        done = subprocess.run([sys.executable, "-m", "oneword", service],
                              env=service_env(tmp_path, TELEGRAM_TOKEN=WRONG_TOKEN,
                                              ONEWORD_MAX_ATTEMPTS="many"),
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=120)
        lines = done.stdout.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1, done.stdout
        assert lines[0].startswith(f"oneword {service}: setting max_attempts"), done.stdout
        assert WRONG_TOKEN not in done.stdout
