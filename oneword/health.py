"""A process's health over HTTP, for Docker's HEALTHCHECK, an orchestrator and Prometheus.

    GET /livez    200 "alive" while the process's event loop answers, else 503
    GET /readyz   200 when the database answers (and, in a worker, its models are loaded),
                  else 503; a JSON body names each check and the queue's depth
    GET /metrics  Prometheus text (see oneword.metrics), the job counts read at the scrape

`python -m oneword.health [livez|readyz]` asks this process's server (ONEWORD_HEALTH_PORT)
and exits 0 when it answered 200: the Docker images' HEALTHCHECK.

The server runs on a thread of its own (the standard library's ThreadingHTTPServer): a probe
is answered even while the event loop is busy, and a stuck loop shows as a failed /livez
instead of a probe that hangs. Checks that need the database run on the process's loop, each
within `timeout_s`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from oneword.metrics import CONTENT_TYPE, JobCountLike, ServiceMetrics

log = logging.getLogger(__name__)


class HealthPortError(RuntimeError):
    """The health server cannot listen where the settings say (e.g. the port is taken)."""


class QueueProbe(Protocol):
    """What health checks read from the database (storage.stats.QueueStats)."""

    async def check(self) -> None: ...

    async def jobs_by_state(self) -> Iterable[JobCountLike]: ...

    async def waiting(self) -> int: ...


class HealthServer:
    """Serves /livez, /readyz and /metrics for one process until stopped."""

    def __init__(self, listen: str, port: int, probe: QueueProbe, metrics: ServiceMetrics,
                 extra_checks: dict[str, Callable[[], bool]] | None = None,
                 timeout_s: float = 5.0) -> None:
        """`extra_checks`: more conditions for readiness, e.g. {"model": lambda: loaded}.
        `port` 0 takes a free port (see :attr:`port` once started)."""
        self.listen, self.requested_port = listen, port
        self.probe, self.metrics = probe, metrics
        self.extra_checks = dict(extra_checks or {})
        self.timeout_s = timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (after :meth:`start`)."""
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    async def start(self) -> None:
        """Bind and serve on a daemon thread; the checks run on the calling loop. Raises
        :class:`HealthPortError` when the address cannot be bound (e.g. the port is taken)."""
        self._loop = asyncio.get_running_loop()
        try:
            self._server = ThreadingHTTPServer((self.listen, self.requested_port),
                                               _handler(self))
        except OSError as exc:
            raise HealthPortError(f"cannot serve health checks on {self.listen}:"
                                  f"{self.requested_port} ({exc.strerror or exc}); set "
                                  "ONEWORD_HEALTH_PORT to a free port, or 0 for none") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health",
                                        daemon=True)
        self._thread.start()
        log.info("health and metrics on http://%s:%d (/livez /readyz /metrics)", self.listen,
                 self.port)

    async def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            await asyncio.to_thread(self._server.shutdown)
            self._server.server_close()
            self._server = None

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the process can do its work now, with what each check found."""
        report: dict[str, Any] = {}
        ready = True
        try:
            await self.probe.check()
            report["database"] = "ok"
            report["queue_depth"] = await self.probe.waiting()
            self.metrics.database_up.set(1)
        except Exception as exc:  # any failure to reach the database means not ready
            ready = False
            report["database"] = f"unavailable: {exc}"
            self.metrics.database_up.set(0)
        for name, check in self.extra_checks.items():
            passed = bool(check())
            report[name] = "ok" if passed else "not yet"
            ready = ready and passed
        return ready, report

    async def refresh_metrics(self) -> None:
        """Read the job counts into the metrics (left as they were if the database fails)."""
        try:
            await self.probe.check()
            counts = list(await self.probe.jobs_by_state())
            self.metrics.set_jobs(counts, await self.probe.waiting())
            self.metrics.database_up.set(1)
        except Exception as exc:
            log.warning("metrics: cannot read the job counts: %s", exc)
            self.metrics.database_up.set(0)

    def on_loop(self, make: Callable[[], Awaitable[Any]]) -> Any:
        """Run a coroutine on the process's loop from the server's thread and wait for it.
        Raises TimeoutError when the loop does not finish it in time."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(_call(make), self._loop)
        try:
            return future.result(self.timeout_s)
        except FutureTimeout:
            future.cancel()
            raise TimeoutError(f"no answer within {self.timeout_s:g} s") from None


async def _call(make: Callable[[], Awaitable[Any]]) -> Any:
    return await make()


async def _nothing() -> None:
    return None


def _handler(owner: HealthServer) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one server's checks."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            path = self.path.split("?", 1)[0].rstrip("/")
            try:
                if path == "/livez":
                    owner.on_loop(_nothing)
                    self._send(200, b"alive\n", "text/plain; charset=utf-8")
                elif path == "/readyz":
                    ready, report = owner.on_loop(owner.readiness)
                    body = json.dumps({"ready": ready, **report}).encode() + b"\n"
                    self._send(200 if ready else 503, body, "application/json")
                elif path == "/metrics":
                    owner.on_loop(owner.refresh_metrics)
                    self._send(200, owner.metrics.text(), CONTENT_TYPE)
                else:
                    self._send(404, b"not found: try /livez, /readyz or /metrics\n",
                               "text/plain; charset=utf-8")
            except (TimeoutError, RuntimeError) as exc:  # the loop is stuck or closed
                self._send(503, f"not answering: {exc}\n".encode(), "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds
            log.debug("health: " + format, *args)

    return Handler


def probe(path: str = "readyz", port: int | None = None, timeout_s: float = 10.0) -> int:
    """0 when the local health server answers ``/path`` with 200, else 1 (with the reason on
    stderr): a container health check with nothing but the standard library."""
    port = port if port is not None else int(os.environ.get("ONEWORD_HEALTH_PORT") or 0)
    if not port:
        print("ONEWORD_HEALTH_PORT is not set: no health server to ask", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{port}/{path.strip('/')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return 0 if answer.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"{url}: {exc.code} {exc.read().decode(errors='replace').strip()}",
              file=sys.stderr)
    except (OSError, ValueError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(probe(*sys.argv[1:2]))
