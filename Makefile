# maskloop: two commands.
#   make run   install everything, migrate, create the demo project, collect static files,
#              start gunicorn + a Celery worker per queue + Celery beat
#   make test  install everything (dev tools included) and run the whole test suite
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-dev demo migrate worker web clean-var

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install only when a requirements file changed (stamp files record the last install).
$(VENV)/.installed: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py demo_setup

run: demo
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py runstack --host $(HOST) --port $(PORT)

test: install-dev
	$(PY) -m pytest
	$(PY) tests/integration/run.py

clean-var:
	rm -rf var/
