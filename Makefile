PYTHON ?= python3

.PHONY: install test lint demo bench

install:
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e ".[worker,dev]"

test: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .

bench:
	$(PYTHON) -m bench

# The whole story (learn, replace, add, restyle, remove, sticker) played by the real bot and
# worker on the bundled model against a local Telegram, on CPU; prints where the transcript is.
demo: install
	$(PYTHON) -m oneword playground --script --out runs/demo
