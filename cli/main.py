"""`oneword <command>`: dispatches to the part of the project that owns the command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from cli import learn_edit

# Set for every command unless the environment already says otherwise; read by torch's OpenMP
# runtime when torch loads, so set before any command imports it. PASSIVE: idle OpenMP threads
# sleep instead of spinning. On a 2-core CPU shared with other work, spinning threads made
# `oneword learn` on the bundled model 7x slower (6 min 12 s against 42.5 s).
CPU_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}

# What `pip install oneword[worker]` adds to the bot's light install (see pyproject.toml).
WORKER_MODULES = frozenset({"torch", "diffusers", "transformers", "accelerate", "safetensors",
                            "numpy", "tqdm", "engine", "world", "worker"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oneword", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    learn_edit.add_commands(subparsers)
    for name, help_text in (("bot", "run the Telegram bot (token from TELEGRAM_TOKEN)"),
                            ("worker", "run the worker that carries out the bot's jobs")):
        service = subparsers.add_parser(name, help=help_text)
        service.add_argument("--config", default=None, help="a TOML settings file")
        service.add_argument("--data-dir", default=None)
        service.add_argument("--model", default=None)
        service.add_argument("--device", default=None)
        service.set_defaults(run=run_service)
    add_playground_command(subparsers)
    add_bench_command(subparsers)
    return parser


def add_playground_command(subparsers: argparse._SubParsersAction) -> None:
    """`oneword playground`, where the playground is installed (not in the bot's image)."""
    playground = subparsers.add_parser(
        "playground", help="try OneWord locally: a chat page, or --script to play the story")
    try:
        from playground.options import add_options  # argparse only
    except ImportError:
        playground.set_defaults(run=lambda args: _missing("the playground", "worker,dev"))
        return
    add_options(playground)
    playground.set_defaults(run=run_playground)


def add_bench_command(subparsers: argparse._SubParsersAction) -> None:
    """`oneword bench`: the benchmark in the checkout's bench/ folder (not an installed package)."""
    bench = subparsers.add_parser("bench", help="measure speed and edit quality into "
                                                "bench/results/ (--quick: a one-minute run)")
    try:
        from bench.options import add_options  # argparse only: torch loads when it runs
    except ImportError:
        bench.set_defaults(run=lambda args: _no_bench())
        return
    add_options(bench)
    bench.set_defaults(run=run_bench)


def _missing(what: str, extras: str) -> int:
    print(f"oneword: {what} is not installed here; in the project's folder run "
          f"pip install \".[{extras}]\" (make install installs everything)", file=sys.stderr)
    return 2


def _cannot_start(service: str, reason: str) -> int:
    print(f"oneword {service}: {reason}", file=sys.stderr)
    return 1


def _no_bench() -> int:
    print("oneword: the benchmark lives in the repository's bench/ folder; run it from the "
          "checkout's root (python -m oneword bench)", file=sys.stderr)
    return 2


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark with the parsed options (declared in bench/options.py)."""
    from bench.runner import run

    return run(args)


def run_playground(args: argparse.Namespace) -> int:
    """Start the playground (local Telegram, bot, worker, chat page or scripted story)."""
    from playground.cli import run

    return run(args)


def run_service(args: argparse.Namespace) -> int:
    """Start the bot or the worker with settings from the file, the environment and flags.

    A start that cannot succeed (bad settings; for the bot a missing or rejected token, or no
    Bot API to reach) ends with one line on stderr and exit code 1.
    """
    from oneword.settings import SettingsError, load_settings

    try:
        settings = load_settings(args.config, data_dir=args.data_dir, model=args.model,
                                 device=args.device)
    except SettingsError as exc:
        return _cannot_start(args.command, str(exc))
    logging.getLogger().setLevel(settings.log_level.upper())
    if args.command == "bot":
        from bot.app import run
        from bot.startup import StartupError

        try:
            return run(settings) or 0
        except StartupError as exc:
            return _cannot_start("bot", str(exc))
    from worker.loop import main as worker_main

    return worker_main(settings)


def use_cpu_defaults(environ: os._Environ | dict[str, str] = os.environ) -> None:
    """Put CPU_DEFAULTS into ``environ`` where it has no value of its own (a user's wins)."""
    for key, value in CPU_DEFAULTS.items():
        environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    use_cpu_defaults()
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ModuleNotFoundError as exc:  # the bot's install has no model stack
        if exc.name and exc.name.split(".")[0] in WORKER_MODULES:
            return _missing(f"this command needs {exc.name}, which", "worker")
        raise
    except Exception as exc:
        errors = sys.modules.get("engine.errors")  # loaded only by commands that use the engine
        if errors is None or not isinstance(exc, errors.EngineError):
            raise
        print(f"oneword: {exc}", file=sys.stderr)
        return 2
