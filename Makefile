# The two set-up commands of the README: `make run` and `make test`. Both create and use .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
.PHONY: install run test lint bench migrate seed clean chromium wrk

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The database: DATABASE_URL when set, else PostgreSQL on 127.0.0.1:5432 when it answers, else the
# embedded PostgreSQL server of a pip wheel, data in var/postgres, started and stopped by the command
# (inro/devdb.py). `make migrate` and `make seed` use the database `inro` there.
migrate: install
	$(BIN)/python -m inro.devdb run $(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python -m inro.devdb run $(BIN)/python manage.py seed_demo

# Migrate, load the demo data, then the web server, Celery worker and beat (filesystem broker in var/),
# all stopped together however `make run` is stopped (inro/devserver.py).
run: install
	@$(BIN)/python -m inro.devserver

# The browser tests drive Debian's Chromium; install it when missing and we may (root with apt-get).
chromium:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { echo "Installing Debian's chromium for the browser tests..."; apt-get update -qq && apt-get install -y -qq chromium; } \
	  || echo "WARNING: /usr/bin/chromium is missing; the browser tests will fail (apt-get install -y chromium)."; }

# The first line says which server; without DATABASE_URL each run has a database of its own, dropped
# afterwards, so two runs on one server never meet.
test: install chromium
	@$(BIN)/python -m inro.devdb test $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Every scenario of bench/ on its own PostgreSQL database (BENCH_DATABASE_URL, default inro_bench,
# dropped and created again); prints the table and writes bench/RESULTS.md. Sizes: see bench/run.py.
bench: install wrk
	$(BIN)/python bench/run.py

# The webhook intake bench drives gunicorn with Debian's wrk; installed like chromium above.
wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { echo "Installing Debian's wrk for the webhook intake bench..."; apt-get update -qq && apt-get install -y -qq wrk; } \
	  || echo "WARNING: wrk is missing; the webhook intake bench will fail (apt-get install -y wrk)."; }

clean:
	rm -rf $(VENV) var/broker var/broker-processed var/broker-control
