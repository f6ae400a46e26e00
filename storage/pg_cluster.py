"""A throwaway local PostgreSQL server, for tests and benchmarks on one machine.

``initdb`` into a temporary folder, ``postgres`` listening only on a Unix socket in that folder
(no TCP port, nothing to clash with), trust authentication for the local user, durability
switched off (the data is thrown away), and everything removed at :meth:`ThrowawayCluster.stop`.
PostgreSQL refuses to run as root, so as root the server runs as the unprivileged ``nobody``.

Uses the server programs of Debian's ``postgresql`` package (``/usr/lib/postgresql/<ver>/bin``)
or whatever ``initdb`` is on the PATH.

As a program it runs a command beside such a server (CI runs the test suite this way)::

    python -m storage.pg_cluster [--env NAME] -- COMMAND [ARG...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

ROLE = "oneword"
UNPRIVILEGED_USER = "nobody"


def find_bin_dir() -> Path | None:
    """The folder of PostgreSQL's server programs (``initdb``, ``pg_ctl``), or None."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0)
    return versions[-1].parent if versions else None


def url_with_schema(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` (search_path): one database, many isolated
    test schemas."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-c search_path={schema}', safe='')}"


class ThrowawayCluster:
    """One temporary PostgreSQL server; ``url`` is set while it runs."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir or find_bin_dir()
        if found is None:
            raise FileNotFoundError(
                "PostgreSQL's server programs were not found (install Debian's postgresql "
                "package, or put initdb on the PATH)."
            )
        self.bin_dir = found
        self.folder: Path | None = None
        self.url = ""

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", UNPRIVILEGED_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> str:
        """Create and start the server; return its URL."""
        # /tmp rather than a long TMPDIR: a socket path may only have about 100 characters.
        self.folder = Path(tempfile.mkdtemp(prefix="oneword-pg-",
                                            dir="/tmp" if Path("/tmp").is_dir() else None))
        if os.geteuid() == 0:
            shutil.chown(self.folder, UNPRIVILEGED_USER)
        data = self.folder / "data"
        self._run("initdb", "-D", str(data), "-U", ROLE, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        self._run("pg_ctl", "-D", str(data), "-l", str(self.folder / "log"), "-w",
                  "-o", self._options(), "start")
        self.url = f"postgresql://{ROLE}@/postgres?host={quote(str(self.folder), safe='/')}"
        return self.url

    def restart(self) -> None:
        """Stop the server (dropping every connection, as a crash or an upgrade would) and
        start it again on the same socket."""
        assert self.folder is not None, "start() first"
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "log"),
                  "-m", "fast", "-w", "-o", self._options(), "restart")

    def _options(self) -> str:
        return (f"-k {self.folder} -c listen_addresses='' -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")

    def stop(self) -> None:
        """Stop the server and delete its folder (idempotent)."""
        if self.folder is None:
            return
        with contextlib.suppress(RuntimeError):  # not running: nothing to stop
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder, self.url = None, ""

    def __enter__(self) -> ThrowawayCluster:
        try:
            self.start()
        except BaseException:  # e.g. SIGTERM during initdb: leave no server or folder behind
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run a command with a throwaway server's URL in an environment variable; the server is
    stopped and deleted when the command ends, also after Ctrl-C or SIGTERM. Returns the
    command's exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m storage.pg_cluster",
        description="Run COMMAND beside a throwaway local PostgreSQL server.")
    parser.add_argument("--env", default="ONEWORD_TEST_DATABASE_URL",
                        help="the variable that gets the server's URL (%(default)s)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("name the command to run after --")
    # SIGTERM ends this process as Ctrl-C would: the command is killed, the server removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        with ThrowawayCluster() as cluster:
            return subprocess.run(command, env={**os.environ, args.env: cluster.url}).returncode
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"storage.pg_cluster: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
