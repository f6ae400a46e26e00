"""The throwaway PostgreSQL server as a program (CI runs the suite beside it): the command gets a
working URL, its exit status comes back, and no server or folder outlives it, also when the
program is stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from storage.pg_cluster import find_bin_dir

pytestmark = pytest.mark.skipif(find_bin_dir() is None and os.environ.get("CI") != "true",
                                reason="PostgreSQL's server programs are not installed")

CHECK = """
import os, sys, psycopg
url = os.environ["THE_URL"]
with psycopg.connect(url) as conn:
    user, address = conn.execute("SELECT current_user, inet_server_addr()").fetchone()
print(url, user, address, flush=True)
sys.exit(7)
"""


def folder_of(url: str) -> Path:
    return Path(parse_qs(urlparse(url).query)["host"][0])


def test_runs_a_command_beside_a_server_on_a_socket_and_removes_it() -> None:
    done = subprocess.run([sys.executable, "-m", "storage.pg_cluster", "--env", "THE_URL", "--",
                           sys.executable, "-c", CHECK], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 7, done.stderr  # the command's own status
    url, user, address = done.stdout.split()
    assert user == "oneword" and address == "None"  # a Unix socket, no TCP address
    assert not folder_of(url).exists()


def test_sigterm_stops_the_command_and_removes_the_server(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    program = subprocess.Popen(
        [sys.executable, "-m", "storage.pg_cluster", "--env", "THE_URL", "--", "sh", "-c",
         f'echo "$THE_URL" > {url_file}.part && mv {url_file}.part {url_file} && exec sleep 600'])
    try:
        deadline = time.monotonic() + 300  # only stops a hang
        while not url_file.exists():  # the server is up once the command runs
            assert program.poll() is None, "pg_cluster ended before running the command"
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        folder = folder_of(url_file.read_text().strip())
        assert (folder / "data" / "postmaster.pid").exists()
        program.send_signal(signal.SIGTERM)
        assert program.wait(timeout=120) == 128 + signal.SIGTERM
        assert not folder.exists()
    finally:
        program.kill()
        program.wait()
