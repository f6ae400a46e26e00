PYTHON ?= python3

# Marks that the dependencies are installed as pyproject.toml (and the torch pin here) list
# them: `make install` runs pip only when one of those changed. `make install -B` forces it.
INSTALLED := .installed

.PHONY: install test quick lint demo bench

install: $(INSTALLED)

$(INSTALLED): pyproject.toml Makefile
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e ".[worker,dev]"
	touch $@

# Everything: lint and the whole suite (what CI runs).
test: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q

# The quick loop while developing: lint and every test not marked slow (the long end-to-end
# runs of the real bot and worker processes).
quick: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q -m "not slow"

lint:
	$(PYTHON) -m ruff check .

bench:
	$(PYTHON) -m bench

# The whole story (learn, replace, add, restyle, remove, sticker) played by the real bot and
# worker on the bundled model against a local Telegram, on CPU; prints where the transcript is.
demo: install
	$(PYTHON) -m oneword playground --script --out runs/demo
