# Two entry points: `make build` (emit + lint templates/) and `make test` (the whole suite).
# Both create .venv with Python 3.11 and install the exact versions in constraints.txt.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: build test check lint format lock clean help

help:
	@echo "make build   create .venv, install, render templates/ and lint them"
	@echo "make test    create .venv, install, run the whole test suite"
	@echo "make check   fail if templates/ differs from a fresh render (writes nothing)"
	@echo "make lint    ruff format --check, ruff check, zizmor and actionlint over .github/ (run by make test)"
	@echo "make format  reformat with ruff and apply its safe fixes"
	@echo "make lock    re-resolve constraints.txt from setup.cfg's ranges (on purpose only)"

$(STAMP): setup.cfg constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,dev]'
	@touch $(STAMP)

build: $(STAMP)
	$(PY) build.py

check: $(STAMP)
	$(PY) build.py --check

# ruff: the one formatter and linter (settings in pyproject.toml). zizmor: the workflows' and
# Dependabot's security audit, offline (no GitHub API calls).
lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/zizmor --offline --no-progress .github/
	$(VENV)/bin/actionlint -no-color

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: $(STAMP) lint
	$(PY) -m pytest

lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet -e '.[test,dev]'
	.lockenv/bin/pip freeze --exclude-editable | grep -v '^pip==' > constraints.new
	{ head -n 1 constraints.txt; cat constraints.new; } > constraints.txt && rm -rf constraints.new .lockenv

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
