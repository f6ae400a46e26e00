"""Starting the whole service on one machine: our local Telegram (botapi/), the real bot and the
real worker.

The bot and the worker are started exactly as a deployment starts them (``oneword bot`` and
``oneword worker`` subprocesses), only pointed at the local Bot API server through the ordinary
settings (``TELEGRAM_TOKEN``, ``ONEWORD_BASE_URL``, ``ONEWORD_BASE_FILE_URL``), so what the
tests, the playground and the benchmark exercise is what users of a deployment get. This is the
one place that knows how: tests use :func:`running_stack` (the server in their event loop), the
playground uses :class:`LocalStack` (the server in a thread it can read directly).

Each child's output (stdout and stderr together) is read line by line by a thread: kept in
memory (all of it, or the last lines), copied to a sink (a terminal with a prefix, or a log
file) and matched against marker lines a caller waits for. Reading it all the time also means a
chatty child never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from botapi import BotApiServer, ControlClient, ServerThread

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_READY = "worker ready"  # the worker's log line once both lanes have loaded the model
STOP_GRACE_S = 10.0  # a stopped service gets this long to end by itself before SIGKILL
LOG_TAIL_LINES = 40  # what a long-running stack keeps of each service's output


class StackError(RuntimeError):
    """A part of the stack could not start or stopped on its own."""


def service_env(server: BotApiServer, model: str | Path, data_dir: Path,
                settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the bot and worker processes: this process's, with the settings that
    point them at ``server``, ``model`` and ``data_dir`` on top, then ``settings``.

    Settings that would send the bot elsewhere (a settings file, a real token, a webhook) are
    replaced, so a developer's own configuration never leaks into a local stack.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("ONEWORD_CONFIG", "ONEWORD_TOKEN")}
    path = env.get("PYTHONPATH")
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no loading bars in the logs
    # Idle OpenMP threads sleep instead of spinning: on a CPU shared with a browser (or other
    # work) spinning made learning ~30x slower in our measurements.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.update({
        "PYTHONPATH": str(REPO_ROOT) + (os.pathsep + path if path else ""),
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TELEGRAM_TOKEN": server.token,
        "ONEWORD_BASE_URL": server.base_url,
        "ONEWORD_BASE_FILE_URL": server.base_file_url,
        "ONEWORD_WEBHOOK_URL": "",
        "ONEWORD_MODEL": str(model),
        "ONEWORD_DATA_DIR": str(data_dir),
    })
    env.update(settings or {})
    return env


class ServiceProcess:
    """One child process (``oneword bot`` or ``oneword worker``) and its output."""

    def __init__(self, name: str, env: Mapping[str, str], sink: TextIO | None = None,
                 prefix: str = "", keep: int | None = None) -> None:
        """``sink``: where output lines are copied (None: nowhere); ``keep``: how many of the
        last lines :meth:`output` returns (None: all)."""
        self.name = name
        self.argv = [sys.executable, "-m", "oneword", name]
        self.env = dict(env)
        self.sink, self.prefix = sink, prefix
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.process: subprocess.Popen[str] | None = None
        self._markers: dict[str, threading.Event] = {}
        self._lock = threading.Lock()  # the lines and markers, between the reader and callers
        self._pump: threading.Thread | None = None

    def marker(self, text: str) -> threading.Event:
        """An event set once an output line containing ``text`` appears (or has appeared, if
        still among the kept lines)."""
        with self._lock:
            event = self._markers.setdefault(text, threading.Event())
            if any(text in line for line in self.lines):
                event.set()
        return event

    async def wait_for_line(self, text: str, timeout: float) -> None:
        """Wait until an output line contains ``text``; StackError if the process ends first
        or ``timeout`` passes (a bound against a hang, not a pace)."""
        event = self.marker(text)
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(event.wait, 0.5):
            if not self.running:
                raise StackError(self.describe_exit())
            if time.monotonic() > deadline:
                raise StackError(f"the {self.name} wrote no line with {text!r} in {timeout} s")

    def start(self) -> None:
        """Spawn the process in a session of its own, so a Ctrl-C in a terminal reaches only
        the process that started it, which then stops its services in order."""
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            errors="replace", start_new_session=True)
        self._pump = threading.Thread(target=self._copy_output, name=f"{self.name}-log",
                                      daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))
                events = [event for text, event in self._markers.items() if text in line]
            for event in events:
                event.set()
            if self.sink is not None:
                with contextlib.suppress(ValueError, OSError):  # the sink may be closed at exit
                    self.sink.write(self.prefix + line)
                    self.sink.flush()

    @property
    def running(self) -> bool:
        """Whether the process was started and has not ended."""
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """What the process wrote (all of it, or its last lines when started with ``keep``)."""
        with self._lock:
            return "\n".join(self.lines)

    def describe_exit(self) -> str:
        """Why the process is gone, with the end of its output."""
        code = self.process.returncode if self.process is not None else None
        lines = "\n".join(f"  {line}" for line in self.output().splitlines()[-LOG_TAIL_LINES:])
        return f"the {self.name} stopped (exit code {code}); its last output:\n{lines}"

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM); the bot and the worker shut down cleanly on it."""
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """End the process at once (SIGKILL), as a crash or a power cut would."""
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
        self.wait(STOP_GRACE_S)

    def wait(self, timeout: float) -> None:
        """Wait for the process to end, killing it if it takes longer than ``timeout``; then
        for its last output."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._pump is not None:
            self._pump.join(5)


class StackProcesses:
    """The bot and worker processes of one stack, by name, all with one environment (plus what
    a start adds); a process started again under a running name replaces it."""

    def __init__(self, env: Mapping[str, str], sink: TextIO | None = None,
                 log_dir: Path | None = None, keep: int | None = None) -> None:
        """Output goes to ``log_dir``/<name>.log if given, else to ``sink`` prefixed with the
        service's name if given, else only to memory (see :meth:`ServiceProcess.output`)."""
        self.env = dict(env)
        self.sink, self.log_dir, self.keep = sink, log_dir, keep
        self.processes: dict[str, ServiceProcess] = {}
        self._files: list[TextIO] = []

    def start(self, name: str, log: Path | None = None, **env: str) -> ServiceProcess:
        """Start (or kill and restart) ``name`` with ``env`` added; its output is appended to
        ``log`` too when given, readable while it runs."""
        if name in self.processes:
            self.processes.pop(name).kill()
        sink, prefix = self.sink, f"{name:>6} | "
        if log is not None or self.log_dir is not None:
            if log is None:
                assert self.log_dir is not None
                self.log_dir.mkdir(parents=True, exist_ok=True)
                log = self.log_dir / f"{name}.log"
            sink, prefix = open(log, "a", encoding="utf-8"), ""  # noqa: SIM115 (closed at stop)
            self._files.append(sink)
        process = ServiceProcess(name, {**self.env, **env}, sink, prefix, self.keep)
        self.processes[name] = process
        process.start()
        return process

    def kill(self, name: str) -> None:
        """SIGKILL ``name`` (a crash: no clean shutdown) and forget it."""
        self.processes.pop(name).kill()

    def check(self) -> None:
        """Raise :class:`StackError` if a started service is no longer running."""
        for process in self.processes.values():
            if not process.running:
                raise StackError(process.describe_exit())

    def stop(self, grace: float = STOP_GRACE_S,
             before_wait: Callable[[], None] | None = None) -> dict[str, str]:
        """Stop every service (SIGTERM, SIGKILL after ``grace``); returns each one's output.
        ``before_wait`` runs between asking and waiting (e.g. to end the bot's long poll)."""
        for process in self.processes.values():
            process.terminate()
        if before_wait is not None:
            with contextlib.suppress(Exception):
                before_wait()
        logs = {}
        for name, process in self.processes.items():
            process.wait(grace)
            logs[name] = process.output()
        self.processes.clear()
        for file in self._files:
            file.close()
        self._files.clear()
        return logs

    def crash(self) -> None:
        """SIGKILL every service: the end for a test of crashes, which has no use for a clean
        shutdown."""
        for name in list(self.processes):
            self.kill(name)
        for file in self._files:
            file.close()
        self._files.clear()


@contextlib.asynccontextmanager
async def running_stack(model: str | Path, data_dir: Path, *,
                        settings: Mapping[str, str] | None = None, crash_at_exit: bool = False,
                        **server_options: object
                        ) -> AsyncIterator[tuple[StackProcesses, ControlClient]]:
    """A fresh local Bot API server (``server_options``, e.g. ``privacy_mode=True``) in this
    event loop, with the bot and the worker on ``model`` and ``data_dir`` started against it.

    Yields the services and the server's control client. At the end the services are stopped
    cleanly and it is checked that the bot token reached no log; or, with ``crash_at_exit``,
    killed with SIGKILL (a crash test's processes may be in any state).
    """
    async with BotApiServer(**server_options) as server, ControlClient(server.url) as tg:
        services = StackProcesses(service_env(server, model, data_dir, settings))
        services.start("bot")
        services.start("worker")
        logs: dict[str, str] = {}
        try:
            yield services, tg
        finally:
            if crash_at_exit:
                services.crash()
            else:
                logs = await asyncio.to_thread(services.stop)
        # checked only when the body passed: a failing test's own error stays the one reported
        leaked = [name for name, log in logs.items() if server.token in log]
        if leaked:
            raise StackError(f"the bot token appeared in the log of: {leaked}")


@dataclass(frozen=True)
class StackConfig:
    """What a :class:`LocalStack` runs: where the data lives, which model, and more settings
    for both services (``ONEWORD_*`` names)."""

    data_dir: Path
    model: str
    log_dir: Path | None = None  # None: the services' logs go to this terminal, prefixed
    env: Mapping[str, str] = field(default_factory=dict)


class LocalStack:
    """The local Bot API server (in a thread of this process, so its state can be read
    directly), the bot and the worker (subprocesses), for a program that runs for long.

    ``with LocalStack(config) as stack:`` starts everything and stops it all on the way out,
    also after Ctrl-C or an error; :meth:`check` raises :class:`StackError` when a service died.
    The bot opens (and migrates) the data directory first; the worker starts once the bot is
    polling, so the two processes never race to create the database.
    """

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.server = BotApiServer()
        self.thread: ServerThread | None = None
        self.services: StackProcesses | None = None
        self._worker_ready = threading.Event()
        self._stopped = False

    @property
    def url(self) -> str:
        """The local Bot API server (its control API is under ``/control``)."""
        return self.server.url

    @property
    def worker_ready(self) -> bool:
        """Whether the worker has loaded the model and takes jobs."""
        return self._worker_ready.is_set()

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, bot_timeout: float = 120.0) -> None:
        """Start the server, then the bot (waiting until it polls), then the worker."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.thread = self.server.run_in_thread()
        atexit.register(self.stop)
        env = service_env(self.server, self.config.model, self.config.data_dir, self.config.env)
        sink = sys.stderr if self.config.log_dir is None else None
        self.services = StackProcesses(env, sink=sink, log_dir=self.config.log_dir,
                                 keep=LOG_TAIL_LINES)
        bot = self.services.start("bot")
        deadline = time.monotonic() + bot_timeout
        while not self._bot_polls():
            if not bot.running:
                raise StackError(bot.describe_exit())
            if time.monotonic() > deadline:
                raise StackError(f"timed out after {bot_timeout:.0f}s waiting for the bot to "
                                 "connect to the local Telegram")
            time.sleep(0.2)
        self._worker_ready = self.services.start("worker").marker(WORKER_READY)

    def _bot_polls(self) -> bool:
        assert self.thread is not None
        return bool(self.thread.call(lambda: self.server.world.limits.calls.get("getUpdates")))

    def check(self) -> None:
        """Raise :class:`StackError` if the bot or the worker is no longer running."""
        if self.services is not None and not self._stopped:
            self.services.check()

    def stop(self) -> None:
        """Stop the bot and the worker (SIGTERM, then SIGKILL after a grace period), then the
        server. Safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        if self.services is not None:
            # end the bot's long poll now rather than at its timeout
            close = (lambda: self.thread.call(self.server.world.updates.close)) \
                if self.thread is not None else None
            self.services.stop(before_wait=close)
        if self.thread is not None:
            self.thread.stop()
        atexit.unregister(self.stop)
