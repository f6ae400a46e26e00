"""``python -m bot``: run the bot with settings from the environment / ONEWORD_CONFIG."""

from __future__ import annotations

import logging
import sys

from oneword.settings import SettingsError, load_settings

from .app import run


def main() -> int:
    """Load settings, configure logging and run until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"oneword bot: {exc}", file=sys.stderr)
        return 2
    if not settings.token:
        print("oneword bot: set TELEGRAM_TOKEN", file=sys.stderr)
        return 2
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
