# chatstack — the commands a developer and CI use. Everything runs without Nix.
#   make run     embedded default on http://127.0.0.1:8080 (HOST=, PORT= to change)
#   make test    the whole test suite (unit, property, handler, RabbitMQ integration, stack, browser)
#   make stack   the local production-like stack behind nginx on http://127.0.0.1:8088
#   make bench   the benchmark (docs/performance.md; not part of make test)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test venv lint clean axe

# The virtualenv is (re)built from services/poetry.lock whenever the lock changes.
$(VENV)/.installed: services/poetry.lock services/pyproject.toml tools/lock_requirements.py
	@$(PYTHON) -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
		{ echo "make: needs Python >= 3.11 with venv (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) tools/lock_requirements.py services/poetry.lock > $(VENV)/requirements.txt
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(VENV)/requirements.txt
	$(PY) -m pip install --quiet --no-deps -e services
	touch $@

venv: $(VENV)/.installed

# History is kept in var/run/ (set CHATSTACK_HISTORY__DATABASE to put it elsewhere).
run: venv
	mkdir -p var/run
	CHATSTACK_HISTORY__DATABASE=$${CHATSTACK_HISTORY__DATABASE:-$(CURDIR)/var/run/history.sqlite3} \
		$(VENV)/bin/chatstack serve --host $(HOST) --port $(PORT)

# One pytest run over the package's tests and the repository-level ones; the settings
# (markers, timeouts) live in services/pyproject.toml.
test: venv axe
	$(PY) -m pytest -c services/pyproject.toml --rootdir . services/tests tests

# axe-core (accessibility checks of the browser tests), pinned by tests/browser/package-lock.json
# and installed with `npm ci` into the gitignored .tools/axe (Debian: apt-get install nodejs npm).
AXE := .tools/axe/node_modules/axe-core/axe.min.js
$(AXE): tests/browser/package.json tests/browser/package-lock.json
	@command -v npm >/dev/null || { echo "make: needs npm for axe-core (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	mkdir -p .tools/axe
	cp tests/browser/package.json tests/browser/package-lock.json .tools/axe/
	cd .tools/axe && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

axe: $(AXE)

lint: venv
	$(VENV)/bin/ruff check services tests tools
	$(VENV)/bin/ruff format --check services tests tools
	$(VENV)/bin/ruff check --line-length 100 hydra/deploy-hook tools/fleet-secrets
	$(VENV)/bin/ruff format --check --line-length 100 hydra/deploy-hook tools/fleet-secrets
	$(VENV)/bin/mypy --config-file services/pyproject.toml
	$(VENV)/bin/mypy --strict --python-version 3.11 hydra/deploy-hook
	PYTHONPATH=tools $(VENV)/bin/mypy --strict --python-version 3.11 tools/chatbench

clean:
	rm -rf $(VENV) var

# --- the local production-like stack (docs/local-stack.md) ---------------------------------
.PHONY: stack stack-stop gixy

# Foreground: prints every address and log file; Ctrl-C stops everything.
stack: venv
	$(PY) -m chatstack.devstack up --state-dir var/stack

stack-stop: venv
	$(PY) -m chatstack.devstack down --state-dir var/stack

# gixy (nginx config linter) in its own tools venv, pinned; the stack tests build it too.
GIXY_REQUIREMENTS := tests/stack/gixy-requirements.txt
.tools/gixy/.installed: $(GIXY_REQUIREMENTS)
	$(PYTHON) -m venv .tools/gixy
	.tools/gixy/bin/pip install --quiet -r $(GIXY_REQUIREMENTS)
	touch $@

gixy: .tools/gixy/.installed

# --- the benchmark (docs/performance.md; not part of `make test`) -------------------------
.PHONY: bench bench-soak
BENCH_ARGS ?=

# The room-size matrix against a stack and a `chatstack serve` the bench starts itself.
bench: venv .tools/bench/.installed
	PYTHONPATH=tools $(PY) -m chatbench $(BENCH_ARGS)

# The bench's own venv (never the services'): py-spy for --profile, and the comparison peer
# (python-socketio, aiohttp, aio-pika), pinned.
BENCH_REQUIREMENTS := tools/chatbench/requirements.txt tools/chatbench/peer-requirements.txt
.tools/bench/.installed: $(BENCH_REQUIREMENTS)
	$(PYTHON) -m venv .tools/bench
	.tools/bench/bin/pip install --quiet $(addprefix -r ,$(BENCH_REQUIREMENTS))
	touch $@

.PHONY: bench-tools
bench-tools: .tools/bench/.installed

# 30 minutes at 5k deliveries/s through the stack: RSS growth, errors, every ack stored.
bench-soak: venv
	PYTHONPATH=tools $(PY) -m chatbench soak $(BENCH_ARGS)
