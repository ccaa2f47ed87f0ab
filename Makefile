# Two commands a new user needs: `make setup`, then `make test`.
PYTHON ?= python3.11
VENV ?= .venv
# checkov, in a venv of its own: its dependency pins clash with the project's (tests/deploy run it from here).
TOOLS_VENV ?= .venv-tools
CHECKOV_VERSION := 3.3.30
BIN := $(VENV)/bin
PIP_FLAGS ?= -c constraints.txt

.PHONY: setup system-deps venv tools protos lint format typecheck test test-slow test-all bench clean up down test-e2e test-gpu

setup: system-deps venv tools  ## venv + all dependencies (every backend) + stubs check
	@echo "setup done: run 'make test'"

system-deps:  ## redis-server, nginx and chromium for the tests that start their own (apt, when missing and possible)
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v nginx >/dev/null 2>&1 || missing="$$missing nginx-light"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "warning: missing$$missing; install with apt-get install$$missing" >&2; fi; \
	fi

venv:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found (set PYTHON=...)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3
	$(BIN)/python -m pip install -q $(PIP_FLAGS) -e '.[dev]'

tools:  ## checkov for tests/deploy, in its own venv (.venv-tools)
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q --upgrade pip==26.3
	$(TOOLS_VENV)/bin/python -m pip install -q -c constraints-tools.txt checkov==$(CHECKOV_VERSION)

protos:  ## regenerate tryon/v1 from protos/
	$(BIN)/python scripts/gen_protos.py

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck:  ## mypy --strict over tryon, services, orchestrator and gateway ([tool.mypy] in pyproject.toml says what is relaxed)
	$(BIN)/mypy

test: lint typecheck  ## the default suite (what .ci/run runs first)
	$(BIN)/python -m pytest -m "not slow and not gpu and not e2e" -q

test-slow:  ## the slow suites (also run by .ci/run); pytest's exit 5 means none are selected
	$(BIN)/python -m pytest -m "slow and not gpu and not e2e" -q || [ $$? -eq 5 ]

test-gpu:  ## the full backends on a CUDA device (tiny random models, every precision); skipped without CUDA
	$(BIN)/python -m pytest -m gpu -q -rs

test-e2e:  ## the whole system started as `make up` does: end to end, load and faults (also run by .ci/run)
	$(BIN)/python -m pytest -m e2e -q || [ $$? -eq 5 ]

# The whole system on this machine: `make up` (HTTP_PORT=N for another port), `make down`.
HTTP_PORT ?= 8080
RUN_DIR ?= $(if $(filter 8080,$(HTTP_PORT)),.run,.run-$(HTTP_PORT))

up:  ## Redis, the five services, the worker, the gateway and nginx; prints the URL when ready
	$(BIN)/python -m tryon.localstack up --http-port $(HTTP_PORT) --run-dir $(RUN_DIR)

down:  ## stop everything `make up` started (same HTTP_PORT)
	$(BIN)/python -m tryon.localstack down --run-dir $(RUN_DIR)

test-all: test test-slow

bench:
	$(BIN)/python bench/bench_lite.py

clean:
	rm -rf $(VENV) $(TOOLS_VENV) .pytest_cache .ruff_cache *.egg-info
