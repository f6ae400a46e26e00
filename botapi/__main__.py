"""Run the local Bot API server standalone: ``python -m botapi --port 8081``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from .server import DEFAULT_NAME, DEFAULT_TOKEN, DEFAULT_USERNAME, BotApiServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line options (all optional)."""
    parser = argparse.ArgumentParser(prog="python -m botapi", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--username", default=DEFAULT_USERNAME, help="bot username")
    parser.add_argument("--name", default=DEFAULT_NAME, help="bot first name")
    parser.add_argument("--privacy", action="store_true", help="group privacy mode on")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Run until SIGTERM or Ctrl-C, printing the URLs a bot needs."""
    server = BotApiServer(
        args.host, args.port, token=args.token, bot_username=args.username,
        bot_name=args.name, privacy_mode=args.privacy,
    )
    async with server:
        print(f"Bot API server on {server.url}", flush=True)
        print(f"  token:         {server.token}", flush=True)
        print(f"  base_url:      {server.base_url}", flush=True)
        print(f"  base_file_url: {server.base_file_url}", flush=True)
        print(f"  control API:   {server.url}/control/state", flush=True)
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError):  # not available on Windows
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    print("Bot API server stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m botapi``."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
