# One entry point for developer tasks. `make run` and `make test` are the two set-up commands.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test install install-test lint typecheck format bench demo-service clean console console-api client bench-compare

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Linqra needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml client/pyproject.toml
	$(BIN)/pip install -q -e ./client -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e ./client -e ".[test,dev]"
	@touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test
	@scripts/ensure-redis.sh
	@scripts/ensure-prometheus.sh
	@scripts/ensure-oidc.sh
	@scripts/ensure-quartz.sh
	@scripts/ensure-chromium.sh
	@scripts/ensure-console.sh

## Start Linqra on http://127.0.0.1:8000 (local Ray cluster + Serve, embedded defaults).
run: install
	$(BIN)/linqra up

## Install the test extras, make sure the servers the tests start exist, run the suite.
test: install-test
	$(BIN)/pytest -q -n 2 --dist loadgroup --no-loadscope-reorder --durations=25

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check linqra actors deployments

typecheck: install-test
	$(BIN)/mypy

format: install-test
	$(BIN)/ruff check --fix .

bench: install-test
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.llm

## Each measure beside its peer (plain Python, LangGraph, raw Ray, bare Serve, uvicorn, NumPy brute force) in one run: tables in docs/benchmarks.md.
bench-compare: install-test
	$(BIN)/pip install -q -e ".[bench]"
	command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && S= || S=sudo; DEBIAN_FRONTEND=noninteractive $$S apt-get install -y -qq wrk; }
	$(BIN)/python -m benchmarks.compare --retrieval --write-docs
	$(BIN)/python -m benchmarks.compare_cluster --write-docs
	$(BIN)/python -m benchmarks.cold_start --write-docs

## The console's client types from the API's schema (after an API change), then its build.
console-api: install-test
	$(BIN)/python -c 'import json; from deployments.app import create_app; print(json.dumps(create_app().openapi(), indent=1, sort_keys=True))' > console/openapi.json
	cd console && npm run gen:api

console: console-api
	cd console && npm run build

## The Python client's generated parts (models, the sync client, docs/python.md's reference).
client: install-test
	$(BIN)/python -m scripts.client_codegen

demo-service: install
	$(BIN)/python -m deployments.demo --port 8100

clean:
	rm -rf $(VENV) .linqra .pytest_cache .mypy_cache .ruff_cache
