# Proteus: the two commands are `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
MODELS_DIR ?= models
# Everything the tests need: PostgreSQL and Redis tests read DATABASE_URL / REDIS_URL.
PYTEST_ARGS ?=

.PHONY: help install run test lint models smoke-models migrate schemas bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

$(VENV)/.installed: requirements/*.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements/dev.txt
	touch $@

install: $(VENV)/.installed ## Create the virtualenv and install every requirement

smoke-models: install ## Write the tiny random "smoke" models into $(MODELS_DIR)/smoke
	$(PY) -m functions.weave.smoke --out $(MODELS_DIR)/smoke
	$(PY) -m functions.weave.fashn.smoke --out $(MODELS_DIR)/smoke
	$(PY) -m functions.tailor.smoke --out $(MODELS_DIR)/smoke

models: install ## Download the real CatVTON, FASHN VTON and SegFormer weights into $(MODELS_DIR) (honours HF_TOKEN)
	$(PY) -m functions.weave.download --models-dir $(MODELS_DIR)
	$(PY) -m functions.weave.fashn.download --models-dir $(MODELS_DIR)
	$(PY) -m functions.tailor.download --models-dir $(MODELS_DIR)

migrate: install ## Apply the database migrations to DATABASE_URL (default: the SQLite file)
	$(PY) -m shared.db.migrate

schemas: install ## Regenerate cloudevents-schemas/*.json and docs/openapi.json from shared/contracts/
	$(PY) -m shared.contracts.generate
	$(PY) -m gateway.openapi

run: install ## Start everything on embedded defaults and serve the web page
	$(PY) -m shared.devstack

test: install ## Install what the tests need and run the whole suite
	bash tests/browser/install-chromium.sh
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install ## ruff (lint and format check) over the tree and mypy over shared/, gateway/ and the model-less functions (configured in pyproject.toml)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: install ## Run the benchmarks (CPU-sized here; see README for GPU numbers)
	$(PY) bench/pipeline.py
	$(PY) bench/weave.py
	$(PY) bench/weave_vae.py
	$(PY) bench/tailor.py
	$(PY) bench/gateway_ws.py
	$(PY) bench/gateway_rest.py

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) var test-artifacts

-include knative/deploy.mk
