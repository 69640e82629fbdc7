# Two entry points: `make build` (emit + lint templates/) and `make test` (the whole suite).
# Both use .venv with Python 3.11 and the exact versions in constraints.txt; `make build` installs
# only what rendering and linting need, `make test` adds the test and dev extras. Installs run
# only when setup.cfg, constraints.txt or pyproject.toml changed (stamp files in .venv).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
# uv installs the same pins as pip, many times faster; taken from PyPI into .tools/ once (or
# UV=/path/to/uv). Without it (offline, unsupported platform, or UV=none) pip installs instead.
UV_VERSION := 0.13.9
UV_HERE := .tools/uv/bin/uv
UV     ?= $(UV_HERE)
# uv leaves byte-compiling to Python's first import (pip compiles all 3,900 files up front);
# where Python may not write bytecode (PYTHONDONTWRITEBYTECODE), uv compiles at install instead.
UV_COMPILE := $(if $(PYTHONDONTWRITEBYTECODE),--compile-bytecode)

.PHONY: build test check lint format lock clean help
.PHONY: scan lock-checkov

help:
	@echo "make build   create .venv, install what rendering needs, render templates/ and lint them"
	@echo "make test    create .venv, install everything, run the whole test suite"
	@echo "make check   fail if templates/ differs from a fresh render (writes nothing)"
	@echo "make lint    ruff format --check, ruff check, zizmor and actionlint over .github/ (run by make test)"
	@echo "make format  reformat with ruff and apply its safe fixes"
	@echo "make lock    re-resolve constraints.txt from setup.cfg's ranges (on purpose only)"
	@echo "make scan    checkov on the dev, staging and prod renderings and bootstrap.yaml (run by make test)"

# $(call install,VENV,CONSTRAINTS,REQUIREMENTS): create VENV with $(PYTHON) if it is missing,
# then install REQUIREMENTS pinned exactly by CONSTRAINTS, with uv when it is there, else pip.
# Another tool environment with its own lock file slots in the same way, e.g.
#   .venv-scan/.installed: constraints-scan.txt ; $(call install,.venv-scan,constraints-scan.txt,TOOL)
define install
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 2; }
	@if test -x "$(UV)"; then \
		test -x $(1)/bin/python || { echo "==> creating $(1) ($(PYTHON), uv)"; \
			"$(UV)" venv --quiet --python "$$(command -v $(PYTHON))" $(1); }; \
		echo "==> installing $(3) into $(1) with uv (exact pins from $(2))"; \
		"$(UV)" pip install $(UV_COMPILE) --python $(1)/bin/python -c $(2) $(3); \
	else \
		test -x $(1)/bin/python || { echo "==> creating $(1) ($(PYTHON))"; $(PYTHON) -m venv $(1); }; \
		$(1)/bin/python -m pip --version >/dev/null 2>&1 || $(1)/bin/python -m ensurepip --default-pip >/dev/null; \
		echo "==> installing $(3) into $(1) with pip (exact pins from $(2); uv unavailable)"; \
		$(1)/bin/python -m pip install --disable-pip-version-check --progress-bar off -c $(2) $(3); \
	fi
	@touch $@
endef

# uv from PyPI, once (no virtual environment needed: its wheel is one binary); failure is not
# an error, the install then falls back to pip.
$(UV_HERE):
	@command -v $(PYTHON) >/dev/null || exit 0; \
	echo "==> fetching uv $(UV_VERSION) from PyPI into .tools/uv (once)"; \
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target .tools/uv "uv==$(UV_VERSION)" \
		|| { echo "note: uv unavailable; installing with pip"; rm -rf .tools/uv; }

# What build.py needs (troposphere, awacs, cfn-lint, boto3, PyYAML) ...
$(VENV)/.installed-build: setup.cfg constraints.txt pyproject.toml | $(filter $(UV_HERE),$(UV))
	$(call install,$(VENV),constraints.txt,-e .)

# ... and, for the suite, the test and dev extras (pytest, moto's server, ruff, zizmor, actionlint).
$(VENV)/.installed-test: $(VENV)/.installed-build
	$(call install,$(VENV),constraints.txt,-e '.[test$(,)dev]')

, := ,

build: $(VENV)/.installed-build
	$(PY) build.py

check: $(VENV)/.installed-build
	$(PY) build.py --check

# ruff: the one formatter and linter (settings in pyproject.toml). zizmor: the workflows' and
# Dependabot's security audit, offline (no GitHub API calls).
lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/zizmor --offline --no-progress .github/
	$(VENV)/bin/actionlint -no-color

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: $(VENV)/.installed-test lint
	$(PY) -m pytest

lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet -e '.[test,dev]'
	.lockenv/bin/pip freeze --exclude-editable | grep -v '^pip==' > constraints.new
	{ head -n 1 constraints.txt; cat constraints.new; } > constraints.txt && rm -rf constraints.new .lockenv

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
	rm -rf $(CHECKOV_VENV)

# checkov (the security scan): its own virtual environment, because its pins clash with ours
# (e.g. boto3 1.35). requirements-checkov.in names the one version; requirements-checkov.lock is
# every package it installs, exactly, regenerated by `make lock` (lock-checkov).
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

$(CHECKOV_STAMP): requirements-checkov.lock | $(filter $(UV_HERE),$(UV))
	$(call install,$(CHECKOV_VENV),requirements-checkov.lock,checkov)

test: $(CHECKOV_STAMP)
lock: lock-checkov

scan: $(VENV)/.installed-build $(CHECKOV_STAMP)
	$(PY) -m karematch_cfn.scan

lock-checkov:
	rm -rf .lockenv-checkov && $(PYTHON) -m venv .lockenv-checkov
	.lockenv-checkov/bin/pip install --quiet -r requirements-checkov.in
	{ echo "# Exact versions of checkov's own environment (.venv-checkov). Update on purpose: make lock."; \
	  .lockenv-checkov/bin/pip freeze | grep -v '^pip=='; } > requirements-checkov.lock
	rm -rf .lockenv-checkov
