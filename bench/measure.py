"""Measuring: wall time (median of runs after a warm-up), peak memory, UNet evaluations, the
machine and versions.

Time is `time.perf_counter` around each run, with the GPU synchronised on both sides. Memory is
the process's resident set, sampled by a background thread during the stage (tracemalloc does
not see torch's allocations), and on CUDA `torch.cuda.max_memory_allocated`. UNet evaluations
(forward per batch item, and backward passes through the UNet) are counted by hooks, so a saving
in work shows on any machine, however noisy its clock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def rss_bytes() -> int:
    """The process's resident set size now: psutil if installed, else /proc, else the peak."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class PeakMemory:
    """Context manager: peak resident set (and peak CUDA allocation) while the block runs.

    A daemon thread samples the resident set every `interval` seconds; the first and last
    samples are taken in the calling thread, so even a block shorter than one interval is seen.
    """

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.01):
        self.device = torch.device(device)
        self.interval = interval
        self.start_bytes = 0
        self.peak_bytes = 0
        self.peak_cuda_bytes: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, rss_bytes())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.start_bytes = self.peak_bytes = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, rss_bytes())
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_cuda_bytes = int(torch.cuda.max_memory_allocated(self.device))

    def as_dict(self) -> dict[str, float | None]:
        """Peak and growth of the resident set, peak CUDA allocation, in MiB."""
        mib = 2**20
        return {"peak_rss_mb": round(self.peak_bytes / mib, 1),
                "rss_growth_mb": round((self.peak_bytes - self.start_bytes) / mib, 1),
                "peak_gpu_mb": (round(self.peak_cuda_bytes / mib, 1)
                                if self.peak_cuda_bytes is not None else None)}


class UNetCounter:
    """Context manager: how often a UNet is evaluated while the block runs.

    `forward` counts images (a batch of four is four evaluations), `calls` the UNet calls, and
    `backward` the images whose output a backward pass went through (textual and null-text
    inversion). A forward hook counts, and on outputs that need a gradient leaves a tensor hook
    that counts when the gradient arrives.
    """

    def __init__(self, unet: torch.nn.Module):
        self.unet = unet
        self.forward = self.calls = self.backward = 0
        self._handle = None

    def _on_forward(self, _module: torch.nn.Module, _args: tuple, output: Any) -> None:
        sample = output.sample if hasattr(output, "sample") else output[0]
        self.calls += 1
        self.forward += int(sample.shape[0])
        if sample.requires_grad:
            sample.register_hook(self._on_backward)

    def _on_backward(self, grad: torch.Tensor) -> None:
        self.backward += int(grad.shape[0])

    def __enter__(self) -> UNetCounter:
        self._handle = self.unet.register_forward_hook(self._on_forward)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()

    def per_run(self, runs: int) -> dict[str, float]:
        """Evaluations per run of a stage that ran `runs` times inside the block."""
        runs = max(1, runs)
        return {"unet_forward": round(self.forward / runs, 1),
                "unet_backward": round(self.backward / runs, 1),
                "unet_calls": round(self.calls / runs, 1)}


@dataclass
class Timing:
    """Wall times of the timed runs of one stage, the memory and UNet evaluations they used."""

    runs: list[float]
    memory: dict[str, float | None] = field(default_factory=dict)
    evaluations: dict[str, float] = field(default_factory=dict)  # per run; empty: not counted

    @property
    def median(self) -> float:
        return float(statistics.median(self.runs))

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.median, 4), "runs": [round(r, 4) for r in self.runs],
                **self.memory, **self.evaluations}


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work, so that a timer measures it (no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_runs(run: Callable[[], T], repeats: int, device: torch.device | str = "cpu",
              warmup: Callable[[], object] | None = None,
              unet: torch.nn.Module | None = None) -> tuple[Timing, T]:
    """Call `warmup` (default: `run` itself) once untimed, then time `repeats` calls of `run`.

    Returns the timing (median, every run, peak memory over the timed runs, and with `unet`
    its evaluations per run) and the last run's result. The warm-up pays for first-call costs
    (kernel selection, allocator growth, lazy imports) that a long-running worker pays once.
    """
    (warmup or run)()
    synchronize(device)
    runs, result = [], None
    counter = UNetCounter(unet) if unet is not None else contextlib.nullcontext()
    with PeakMemory(device) as memory, counter:
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            result = run()
            synchronize(device)
            runs.append(time.perf_counter() - start)
    evaluations = counter.per_run(len(runs)) if isinstance(counter, UNetCounter) else {}
    return Timing(runs, memory.as_dict(), evaluations), result


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else the platform's answer)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def total_ram_bytes() -> int | None:
    """Physical memory of the machine."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, GPU (if any), OS and torch's thread count."""
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        pass
    ram = total_ram_bytes()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "physical_cores": physical,
            "ram_gb": round(ram / 2**30, 1) if ram else None, "gpu": gpu,
            "os": platform.platform(), "torch_threads": torch.get_num_threads()}


def git_commit(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The checked-out commit and whether the working tree differs from it."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=20, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None
            else None}


def versions() -> dict[str, Any]:
    """Versions of Python and the libraries whose speed is measured, and the git commit."""
    import diffusers
    import numpy
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "numpy": numpy.__version__, "cuda": torch.version.cuda, **git_commit()}


def now() -> dt.datetime:
    """The local time, with its offset, for the report's date."""
    return dt.datetime.now().astimezone()


class Log:
    """Progress lines on stderr, each with the seconds since the benchmark started."""

    def __init__(self, quiet: bool = False):
        self.start = time.perf_counter()
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.start:7.1f}s] {message}", file=sys.stderr,
                  flush=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
