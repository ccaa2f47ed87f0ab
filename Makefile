# Two commands a new user needs: `make setup`, then `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= -c constraints.txt

.PHONY: setup system-deps venv protos lint format test test-slow test-all bench clean up down test-e2e

setup: system-deps venv  ## venv + all dependencies (every backend) + stubs check
	@echo "setup done: run 'make test'"

system-deps:  ## redis-server for the tests that start their own Redis (apt, when missing and possible)
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	  else echo "warning: redis-server missing; install it (apt-get install redis-server)" >&2; fi; }

venv:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found (set PYTHON=...)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3
	$(BIN)/python -m pip install -q $(PIP_FLAGS) -e '.[dev]'

protos:  ## regenerate tryon/v1 from protos/
	$(BIN)/python scripts/gen_protos.py

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint  ## the default suite (what .ci/run runs first)
	$(BIN)/python -m pytest -m "not slow and not gpu and not e2e" -q

test-slow:  ## the slow suites (also run by .ci/run); pytest's exit 5 means none are selected
	$(BIN)/python -m pytest -m "slow and not gpu and not e2e" -q || [ $$? -eq 5 ]

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
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
