"""``python -m bot``: the same as ``oneword bot``."""

from cli.main import main

raise SystemExit(main(["bot"]))
