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

migrate: install
	mkdir -p var
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo

# Web server, Celery worker and beat on the embedded defaults (SQLite, filesystem broker).
run: seed
	@mkdir -p var/broker var/broker-processed var/broker-control
	@echo "Starting Celery worker and beat (logs in var/worker.log, var/beat.log)..."
	@trap 'trap - INT TERM EXIT; kill 0' INT TERM EXIT; \
	$(BIN)/celery -A inro worker --loglevel=INFO --concurrency=2 > var/worker.log 2>&1 & \
	$(BIN)/celery -A inro beat --loglevel=INFO --schedule=var/celerybeat-schedule > var/beat.log 2>&1 & \
	echo ""; echo "  Inro is running at http://127.0.0.1:8000/  (admin: http://127.0.0.1:8000/admin/)"; \
	echo "  Demo login: owner@demo.inro.test / demo-password-2026"; echo ""; \
	$(BIN)/python manage.py runserver 127.0.0.1:8000

# Uses DATABASE_URL when set, else PostgreSQL on 127.0.0.1:5432 when it answers, else SQLite.
# The browser tests drive Debian's Chromium; install it when missing and we may (root with apt-get).
chromium:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { echo "Installing Debian's chromium for the browser tests..."; apt-get update -qq && apt-get install -y -qq chromium; } \
	  || echo "WARNING: /usr/bin/chromium is missing; the browser tests will fail (apt-get install -y chromium)."; }

test: install chromium
	@db="$$($(BIN)/python tests/choose_database.py)"; \
	echo "make test: running the suite on $$db"; mkdir -p var; \
	DATABASE_URL="$$db" DJANGO_SETTINGS_MODULE=inro.settings.test $(BIN)/pytest $(PYTEST_ARGS)

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
	rm -rf $(VENV) var/*.sqlite3 var/broker var/broker-processed
