"""``python -m bot``: the same as ``oneword bot``."""

from oneword.cli import main

raise SystemExit(main(["bot"]))
