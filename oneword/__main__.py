"""``python -m oneword``: the `oneword` command (cli/main.py). An entry point that nothing
imports, so the contract package itself still imports nothing of the project."""

from cli.main import main

raise SystemExit(main())
