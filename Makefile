# The two commands: `make demo` and `make test`. Both set everything up from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MANAGE := $(BIN)/python example_project/manage.py
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test install lint type check-migrations clean tox

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,postgres,celery]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: export SHOP_URL = http://$(HOST):$(PORT)
demo: $(STAMP)
	$(MANAGE) migrate --noinput
	$(MANAGE) seed_shop
	$(MANAGE) runserver $(HOST):$(PORT)

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[lint]"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

type: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[type]"
	$(BIN)/mypy golomt_payments

check-migrations: $(STAMP)
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/django-admin makemigrations --check --dry-run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .tox dist build

# The whole matrix (tox.ini). Where pyenv keeps 3.11-3.13 off PATH, put them on it for tox.
PYENV_PATH := $(shell command -v pyenv >/dev/null && for v in 3.11 3.12 3.13; do \
	d="$$(pyenv root)/versions/$$(pyenv latest $$v 2>/dev/null)/bin"; \
	[ -x "$$d/python$$v" ] && printf '%s:' "$$d"; done)

tox: $(STAMP)
	$(BIN)/python -m pip install --quiet tox
	PATH="$(PYENV_PATH)$$PATH" $(BIN)/tox $(TOX_ARGS)
