"""`oneword <command>`: dispatches to the part of the project that owns the command."""

from __future__ import annotations

import argparse
import logging
import sys

from engine import cli as engine_cli
from engine.errors import EngineError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oneword", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    engine_cli.add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except EngineError as exc:
        print(f"oneword: {exc}", file=sys.stderr)
        return 2
