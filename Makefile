# Two set-up commands (README): `make demo` runs the main job, `make test` runs the tests.
# Both create .venv and install what they need.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup setup-demo demo test test-quick lint format bench clean

setup:
	bash scripts/setup.sh all

setup-demo:
	bash scripts/setup.sh demo

demo: setup-demo
	bash scripts/demo.sh

test: setup
	$(BIN)/python -m pytest -q -ra

test-quick: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f; done

clean:
	rm -rf iro-runs .pytest_cache build *.egg-info
