"""`python -m worker`: the same as `oneword worker`."""

from cli.main import main

raise SystemExit(main(["worker"]))
