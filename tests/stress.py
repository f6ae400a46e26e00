"""The fault test under load: ``tests/test_fault_injection.py`` run over many seeds (or one seed
many times) with CPU hogs beside it, one line per run. Not part of the suite (it takes an hour
or so on two cores); run it before trusting a change to delivery, the queue or the worker.

    python -m tests.stress                    # seeds 1..10, two CPU hogs
    python -m tests.stress --seeds 1212 7 99  # these seeds
    python -m tests.stress --seeds 1212 --runs 20 --hogs 2

Each run prints ``seed, kills, jobs, duplicates, resent in the window, lost`` as the test
reported them (see its docstring for the window), its time and whether it passed; the exit
code is 1 when any run failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/test_fault_injection.py"
RUN_LIMIT_S = 3600  # one run that takes longer than this has hung
_REPORT_RE = re.compile(
    r"fault test \(seed (?P<seed>-?\d+)\): kills (?P<kills>\d+) .*?jobs (?P<jobs>\d+), "
    r"duplicates (?P<duplicates>\d+), lost (?P<lost>\d+)(?:, resent in the window "
    r"(?P<resent>\d+))?")


@dataclass(frozen=True)
class Outcome:
    """One run of the fault test: what it reported (None where it reported nothing)."""

    seed: int
    passed: bool
    seconds: float
    kills: int | None = None
    jobs: int | None = None
    duplicates: int | None = None
    resent: int | None = None
    lost: int | None = None

    def line(self) -> str:
        """The run as one line of the table."""
        def shown(value: int | None) -> str:
            return "-" if value is None else str(value)

        return (f"{self.seed:>6} {shown(self.kills):>5} {shown(self.jobs):>4} "
                f"{shown(self.duplicates):>10} {shown(self.resent):>6} {shown(self.lost):>4} "
                f"{self.seconds:>7.0f}  {'passed' if self.passed else 'FAILED'}")


HEADER = "  seed kills jobs duplicates resent lost seconds  result"


@contextlib.contextmanager
def cpu_hogs(count: int) -> Iterator[None]:
    """``count`` processes that keep a core busy each, for as long as the block runs."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def run_once(seed: int, log: Path) -> Outcome:
    """Run the fault test with ``seed``; its whole output is appended to ``log``."""
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST]
    env = {**os.environ, "FAULT_SEED": str(seed)}
    try:
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=RUN_LIMIT_S)
        output, passed = done.stdout + done.stderr, done.returncode == 0
    except subprocess.TimeoutExpired as exc:
        output, passed = f"{exc.stdout or ''}{exc.stderr or ''}\nhung: killed", False
    with log.open("a") as out:
        out.write(f"===== seed {seed}\n{output}\n")
    seconds = time.monotonic() - started
    found = _REPORT_RE.search(output)
    if found is None:
        return Outcome(seed, passed, seconds)
    numbers = {k: int(v) for k, v in found.groupdict().items() if v is not None and k != "seed"}
    return Outcome(seed, passed, seconds, **numbers)


def main(argv: list[str] | None = None) -> int:
    """Run the stress table; exit code 1 when any run failed."""
    parser = argparse.ArgumentParser(prog="python -m tests.stress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--runs", type=int, default=1, help="runs of each seed")
    parser.add_argument("--hogs", type=int, default=2, help="CPU hogs beside the test")
    parser.add_argument("--log", type=Path,
                        default=Path(tempfile.gettempdir()) / "oneword-stress.log",
                        help="where every run's full output goes")
    args = parser.parse_args(argv)
    outcomes = []
    print(f"{args.hogs} CPU hogs; full output in {args.log}")
    print(HEADER, flush=True)
    with cpu_hogs(args.hogs):
        for seed in args.seeds:
            for _ in range(args.runs):
                outcomes.append(run_once(seed, args.log))
                print(outcomes[-1].line(), flush=True)
    failed = [o for o in outcomes if not o.passed]
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} runs passed; duplicates "
          f"{sum(o.duplicates or 0 for o in outcomes)}, lost {sum(o.lost or 0 for o in outcomes)}"
          f", resent in the window {sum(o.resent or 0 for o in outcomes)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
