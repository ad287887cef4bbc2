# Leadboard: `make run` starts the product, `make test` runs the whole suite.
# Both install what is missing first (Python packages in .venv; Debian's redis-server and
# chromium when absent and we can install them).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test install system-deps lint migrate bench demo clean i18n

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@./scripts/system-deps.sh

run: install
	$(VENV)/bin/leadboard serve

migrate: install
	$(VENV)/bin/leadboard migrate

demo: install
	$(VENV)/bin/leadboard demo --rate 5 --duration 60

test: install system-deps
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check app workers tests bench
	$(VENV)/bin/ruff format --check app workers tests bench
	$(VENV)/bin/mypy app workers

# Every benchmark in turn (about 38 minutes); each prints its figures and the command to rerun it.
bench: install
	@./scripts/system-deps.sh --bench
	$(PY) bench/ingest.py
	$(PY) bench/live_latency.py
	$(PY) bench/fanout.py
	$(PY) bench/sarah.py
	$(PY) bench/board.py
	$(PY) bench/reconcile.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache test-artifacts

# Re-extract translatable text and merge it into the Indonesian catalogue (then translate the
# new empty entries in app/translations/id/LC_MESSAGES/messages.po).
i18n: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k _ -k gettext_ -k N_ -o app/translations/messages.pot app
	$(VENV)/bin/pybabel update -i app/translations/messages.pot -d app/translations -l id --width 100
