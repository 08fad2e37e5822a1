# Two commands do the whole set-up on a machine with Python 3.11+ (see README.md):
#   make run    virtualenv, install, migrate, demo data, then web + worker + beat
#   make test   the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test install lint format lock schema clean

$(INSTALLED): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	@touch $@

install: $(INSTALLED)

run: install
	$(BIN)/python -m controlplane.run

# Tests keep their own SQLite, secret and embedded Redis under var/test, apart from make run's.
test: install
	CONTROLPLANE_VAR_DIR=$(CURDIR)/var/test $(BIN)/pytest $(PYTEST_ARGS)

# ruff; the apps' layers (import-linter, pyproject.toml); the types (mypy, strict where the
# rules live). mypy imports the settings: it keeps its own var directory, apart from make run's.
# bandit (medium and high findings); pip-audit of the lock file (skipped, saying so, offline).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	CONTROLPLANE_VAR_DIR=$(CURDIR)/var/mypy $(BIN)/mypy
	$(BIN)/bandit --quiet --configfile pyproject.toml --recursive . --severity-level medium
	$(BIN)/python .ci/pip_audit.py

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: install
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file var/schema.yml

# Re-pin the whole dependency tree from pyproject.toml.
lock: install
	$(BIN)/pip-compile --quiet --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) var
