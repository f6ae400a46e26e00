"""`python -m worker`: the same as `oneword worker`."""

from oneword.cli import main

raise SystemExit(main(["worker"]))
