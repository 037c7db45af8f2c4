# chatstack — the commands a developer and CI use. Everything runs without Nix.
#   make run     embedded default on http://127.0.0.1:8080 (HOST=, PORT= to change)
#   make test    the whole test suite (unit, property, handler, RabbitMQ integration, stack, browser)
#   make stack   the local production-like stack behind nginx on http://127.0.0.1:8088

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test venv lint clean

# The virtualenv is (re)built from services/poetry.lock whenever the lock changes.
$(VENV)/.installed: services/poetry.lock services/pyproject.toml tools/lock_requirements.py
	$(PYTHON) -m venv $(VENV)
	$(PY) tools/lock_requirements.py services/poetry.lock > $(VENV)/requirements.txt
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(VENV)/requirements.txt
	$(PY) -m pip install --quiet --no-deps -e services
	touch $@

venv: $(VENV)/.installed

run: venv
	$(VENV)/bin/chatstack serve --host $(HOST) --port $(PORT)

test: venv
	$(PY) -m pytest services/tests tests

lint: venv
	$(VENV)/bin/ruff check services tests tools
	$(VENV)/bin/ruff format --check services tests tools
	$(VENV)/bin/mypy --config-file services/pyproject.toml

clean:
	rm -rf $(VENV) var
