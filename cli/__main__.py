"""``python -m cli``: the same as ``oneword``."""

from cli.main import main

raise SystemExit(main())
