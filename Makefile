# Keyward: `make run` serves a demo on 127.0.0.1:8000; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint format check-deploy clean bench bench-scale bench-floor bench-all bench-revoke bench-profile bench-hosts bench-instructions

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.installed

# The browser tests drive Debian's Chromium (Playwright cannot download its own here);
# the load test drives wrk. Both come from Debian's packages.
$(VENV)/.browser: | $(BIN)/python
	@command -v chromium >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1 \
	  || (apt-get update && apt-get install -y chromium wrk) \
	  || echo "make: could not install chromium and wrk; their tests will skip (or fail in CI)" >&2
	@if command -v chromium >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1; then touch $@; fi

## .env: development settings for this checkout (DEBUG=1, a SECRET_KEY and a KEYWARD_PEPPER
## of its own), so that manage.py works here without exports. Written only when missing.
## The secrets carry the development prefixes that settings refuse when DEBUG is off.
.env:
	@umask 077 \
	  && secret=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))') \
	  && pepper=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(48))') \
	  && printf '%s\n' \
	    "# Development settings for this checkout, written by make run. Not for production:" \
	    "# with DEBUG off, Keyward refuses to start with these secrets." \
	    "DEBUG=1" \
	    "SECRET_KEY=django-insecure-$$secret" \
	    "KEYWARD_PEPPER=insecure-dev-$$pepper" > $@.tmp \
	  && mv $@.tmp $@
	@echo "make: wrote .env (DEBUG=1 and secrets for this checkout only)"

## run: install, migrate the SQLite database, create the demo organisation, serve, with one
## background worker beside the server (webhooks, email notices); the worker stops with it.
## Webhooks may reach loopback receivers here (development only).
run: $(VENV)/.installed .env
	DEBUG=1 $(BIN)/python manage.py migrate --no-input
	DEBUG=1 $(BIN)/python manage.py seeddemo
	export DEBUG=1 KEYWARD_WEBHOOK_ALLOW_PRIVATE=1; \
	$(BIN)/python manage.py db_worker --no-reload & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT; trap 'exit 130' INT TERM; \
	$(BIN)/python manage.py runserver 127.0.0.1:8000

## test: install the development requirements, lint (ruff, import layers) and run every test.
test: $(VENV)/.dev-installed $(VENV)/.browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(VENV)/.bench-installed: requirements.txt requirements-bench.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-bench.txt
	touch $@

## bench: gunicorn + wrk, five guards side by side (needs PostgreSQL, Redis, wrk; see
## docs/README-performance.md). BENCH_ARGS="--rounds 3 --seconds 3" for a quicker run.
bench: $(VENV)/.bench-installed
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## bench-floor: one authenticate() call in-process against parse + checksum + one HMAC.
bench-floor: $(VENV)/.bench-installed
	$(BIN)/python bench/floor.py

## bench-profile: a warm request in-process, with and without Keyward, and its profile.
bench-profile: $(VENV)/.bench-installed
	$(BIN)/python bench/profile.py $(PROFILE_ARGS)

## bench-instructions: instructions per warm request under valgrind, against no authentication.
bench-instructions: $(VENV)/.bench-installed
	$(BIN)/python bench/instructions.py $(INSTRUCTIONS_ARGS)

## bench-revoke: how long a revoke takes with four workers live, and with one frozen.
bench-revoke: $(VENV)/.bench-installed
	$(BIN)/python bench/revoke.py $(REVOKE_ARGS)

## bench-hosts: two app hosts in network namespaces on one PostgreSQL and one Redis: a revoke
## on one refused by the other, one rate budget, the throughput of each (root; skips otherwise).
bench-hosts: $(VENV)/.bench-installed
	$(BIN)/python bench/hosts.py $(HOSTS_ARGS)

## bench-scale: 1,000,000 keys and audit events in PostgreSQL; lookups and first pages.
bench-scale: $(VENV)/.bench-installed
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

bench-all: bench bench-floor bench-scale

## lint: ruff, and the import layers of docs/architecture.md (contracts in pyproject.toml).
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(VENV)/.dev-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check-deploy: $(VENV)/.installed
	DEBUG=0 SECRET_KEY=$$($(BIN)/python -c "import secrets;print(secrets.token_urlsafe(50))") \
	KEYWARD_PEPPER=$$($(BIN)/python -c "import secrets;print(secrets.token_urlsafe(48))") \
	ALLOWED_HOSTS=keyward.example.com $(BIN)/python manage.py check --deploy

## load: 60 s of wrk on loopback against gunicorn, PostgreSQL (kw_load) and Redis (db 15);
## see docs/README-load.md. LOAD_ARGS="--duration 10" for a shorter run.
.PHONY: load
load: $(VENV)/.installed
	@command -v wrk >/dev/null 2>&1 || (apt-get update && apt-get install -y wrk)
	$(BIN)/python bench/load.py $(LOAD_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles test-output
