"""`python -m bench`: the benchmark from the command line (also `oneword bench`, `make bench`)."""

from __future__ import annotations

import argparse
import sys

from bench.options import add_options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench",
                                     description="Benchmark OneWord's speed and edit quality.")
    add_options(parser)
    args = parser.parse_args(argv)
    from bench.runner import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
