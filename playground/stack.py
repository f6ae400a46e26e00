"""The running parts of a playground: the local Telegram, the real bot, the real worker.

The bot and the worker are started exactly as a deployment starts them (``oneword bot`` and
``oneword worker`` subprocesses), only pointed at our local Bot API server through the ordinary
settings (``TELEGRAM_TOKEN``, ``ONEWORD_BASE_URL``, ``ONEWORD_BASE_FILE_URL``): what the
playground shows is what users of a real deployment would get. The server runs in a thread of
this process so the playground can read its state directly.

Start-up order matters: the bot opens (and migrates) the data directory first; the worker
starts once the bot is polling, so the two processes never race to create the database.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import engine
from botapi import BotApiServer, ServerThread
from playground.options import DEMO_INVERSION_STEPS, DEMO_LEARN_STEPS

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = Path(engine.__file__).resolve().parent / "models" / "sticker-world"

WORKER_READY = "worker ready"  # the worker's log line once both lanes have loaded the model
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 40


class StackError(RuntimeError):
    """A part of the playground could not start or stopped on its own."""


def resolve_model(model: str | None) -> str:
    """The model the worker should load: the one given, else the bundled sticker-world model.

    The bundled model is trained in the background while OneWord is developed and may not be
    there yet; say so plainly instead of letting the worker fail with a loader traceback.
    """
    if model:
        return model
    if not (BUNDLED_MODEL / "model_index.json").is_file():
        raise StackError(
            f"the bundled model is missing: {BUNDLED_MODEL} has no model_index.json.\n"
            "It is written by its training run (python -m world.train, see "
            "world/train.py); wait for its first export, or pass --model with a "
            "diffusers Stable Diffusion folder.")
    return str(BUNDLED_MODEL)


@dataclass(frozen=True)
class StackConfig:
    """What to run: where the data lives, which model, how long learning and inversion take."""

    data_dir: Path
    model: str
    learn_steps: int = DEMO_LEARN_STEPS
    inversion_steps: int = DEMO_INVERSION_STEPS
    log_dir: Path | None = None  # None: the services' logs go to this terminal, prefixed
    env: Mapping[str, str] = field(default_factory=dict)  # more ONEWORD_* settings for both


class Service:
    """One child process (the bot or the worker) whose output is copied line by line to a sink,
    keeping the last lines for error messages and noticing marker lines."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], sink: TextIO,
                 prefix: str = "") -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.sink = sink
        self.prefix = prefix
        self.tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.process: subprocess.Popen[str] | None = None
        self._markers: dict[str, threading.Event] = {}
        self._pump: threading.Thread | None = None

    def marker(self, text: str) -> threading.Event:
        """An event set once a log line containing ``text`` appears (register before start)."""
        return self._markers.setdefault(text, threading.Event())

    def start(self) -> None:
        """Spawn the process in a session of its own, so a Ctrl-C in the terminal reaches only
        the playground, which then stops its services in order."""
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
            self.tail.append(line.rstrip("\n"))
            with contextlib.suppress(ValueError, OSError):  # the sink may be closed at exit
                self.sink.write(self.prefix + line)
                self.sink.flush()
            for text, event in self._markers.items():
                if text in line:
                    event.set()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def describe_exit(self) -> str:
        """Why the process is gone, with the end of its output."""
        code = self.process.returncode if self.process is not None else None
        lines = "\n".join(f"  {line}" for line in self.tail)
        return f"the {self.name} stopped (exit code {code}); its last output:\n{lines}"

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM); both services shut down cleanly on it."""
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        """Wait for the process to end; kill it if it takes longer than ``timeout``."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        if self._pump is not None:
            self._pump.join(2)


class Stack:
    """The local Bot API server (in a thread), the bot and the worker (subprocesses).

    ``with Stack(config) as stack:`` starts everything and stops it all on the way out, also
    after Ctrl-C or an error; :meth:`check` raises :class:`StackError` when a service died.
    """

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.server = BotApiServer()
        self.thread: ServerThread | None = None
        self.bot: Service | None = None
        self.worker: Service | None = None
        self._worker_ready = threading.Event()
        self._sinks: list[TextIO] = []
        self._stopped = False

    @property
    def url(self) -> str:
        """The local Bot API server (its control API is under ``/control``)."""
        return self.server.url

    @property
    def worker_ready(self) -> bool:
        """Whether the worker has loaded the model and takes jobs."""
        return self._worker_ready.is_set()

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------------------- start

    def start(self, bot_timeout: float = 120.0) -> None:
        """Start the server, then the bot (waiting until it polls), then the worker."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.thread = self.server.run_in_thread()
        atexit.register(self.stop)
        env = self._child_env()
        self.bot = self._service("bot", env)
        self.bot.start()
        self._wait(self._bot_polls, bot_timeout, "the bot to connect to the local Telegram",
                   self.bot)
        self.worker = self._service("worker", env)
        self._worker_ready = self.worker.marker(WORKER_READY)
        self.worker.start()

    def _child_env(self) -> dict[str, str]:
        """This process's environment with the playground's settings on top.

        Settings that would send the bot elsewhere (a settings file, a real token, a webhook)
        are replaced, so a developer's own configuration never leaks into the playground.
        """
        env = {k: v for k, v in os.environ.items()
               if k not in ("ONEWORD_CONFIG", "ONEWORD_TOKEN")}
        path = env.get("PYTHONPATH")
        env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no loading bars in the logs
        # Idle OpenMP threads sleep instead of spinning: on a laptop CPU shared with a browser
        # (or other work) spinning made learning ~30x slower in our measurements.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        env.update({
            "PYTHONPATH": str(REPO_ROOT) + (os.pathsep + path if path else ""),
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TELEGRAM_TOKEN": self.server.token,
            "ONEWORD_BASE_URL": self.server.base_url,
            "ONEWORD_BASE_FILE_URL": self.server.base_file_url,
            "ONEWORD_WEBHOOK_URL": "",
            "ONEWORD_LEARN_STEPS": str(self.config.learn_steps),
            "ONEWORD_INVERSION_STEPS": str(self.config.inversion_steps),
        })
        env.update(self.config.env)
        return env

    def _service(self, name: str, env: Mapping[str, str]) -> Service:
        argv = [sys.executable, "-m", "oneword", name, "--data-dir",
                str(self.config.data_dir), "--model", self.config.model]
        if self.config.log_dir is None:
            return Service(name, argv, env, sys.stderr, prefix=f"{name:>6} | ")
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        sink = open(self.config.log_dir / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115
        self._sinks.append(sink)
        return Service(name, argv, env, sink)

    def _bot_polls(self) -> bool:
        assert self.thread is not None
        return bool(self.thread.call(lambda: self.server.world.limits.calls.get("getUpdates")))

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str,
              service: Service) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if not service.running:
                raise StackError(service.describe_exit())
            if time.monotonic() > deadline:
                raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.2)

    def check(self) -> None:
        """Raise :class:`StackError` if the bot or the worker is no longer running."""
        for service in (self.bot, self.worker):
            if service is not None and not service.running and not self._stopped:
                raise StackError(service.describe_exit())

    # --------------------------------------------------------------------------- stop

    def stop(self) -> None:
        """Stop the bot and the worker (SIGTERM, then SIGKILL after a grace period), then the
        server. Safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        services = [s for s in (self.bot, self.worker) if s is not None]
        for service in services:
            service.terminate()
        if self.thread is not None:  # end the bot's long poll now rather than at its timeout
            with contextlib.suppress(Exception):
                self.thread.call(self.server.world.updates.close)
        for service in services:
            service.wait(STOP_GRACE_S)
        if self.thread is not None:
            self.thread.stop()
        for sink in self._sinks:
            sink.close()
        atexit.unregister(self.stop)
