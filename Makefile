# learned-router: every target sets up what it needs from scratch (a venv in .venv).
# `make serve` and `make test` are the two commands README.md opens with.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
CONFIG ?= default

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help setup setup-dev serve test check lint format typecheck pytest test-slow test-e2e \
        train train-tiny eval retrain judge bench notebooks notebooks-check demo lock docker clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Serving only: onnxruntime + tokenizers + numpy, no torch/sklearn/mlflow.
$(VENV)/.serve: $(BIN)/python requirements/serve.lock pyproject.toml
	$(BIN)/pip install -q -r requirements/serve.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# Everything: training (torch CPU 2.13.0, sentence-transformers, sklearn, mlflow, ...) and dev tools.
$(VENV)/.dev: $(BIN)/python requirements/dev.lock pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements/dev.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(VENV)/.serve $@

setup: $(VENV)/.serve ## install the serving environment
setup-dev: $(VENV)/.dev ## install training + dev environment

serve: $(VENV)/.serve ## set up and serve on $(HOST):$(PORT) with the committed model
	$(BIN)/learned-router serve --host $(HOST) --port $(PORT)

test: $(VENV)/.dev ## set up from scratch, then lint, type-check and run the test suite
	$(MAKE) check

check: lint typecheck pytest ## ruff + mypy + pytest (assumes setup-dev)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest -q

test-slow: $(VENV)/.dev ## slow benchmarks and full-size tests
	$(BIN)/pytest -q -m slow

test-e2e: $(VENV)/.dev ## end-to-end against a real llama.cpp server running SmolLM2
	bash scripts/install_llama_cpp.sh $(BIN)/pip
	$(BIN)/pytest -q -m e2e

train: $(VENV)/.dev ## train the default model from the data the repo ships (+ configured logs/feedback)
	$(BIN)/learned-router train --config $(CONFIG)

train-tiny: $(VENV)/.dev
	$(BIN)/learned-router train --config tiny --out .cache/models/tiny

eval: $(VENV)/.dev ## evaluate the committed model against the heuristic and baselines
	$(BIN)/learned-router eval

retrain: $(VENV)/.dev ## judge feedback + logs -> candidate model -> gated promotion
	$(BIN)/learned-router train --from-feedback

judge: $(VENV)/.dev ## grade logged cheap-tier answers with the judge model
	$(BIN)/learned-router judge

bench: $(VENV)/.dev ## run all benchmarks, rewrite BENCHMARKS.md and benchmarks/results/
	$(BIN)/python -m benchmarks.run_all

notebooks: $(VENV)/.dev ## re-execute the notebooks in place (commits their outputs)
	$(BIN)/python -m notebooks.execute --write

notebooks-check: $(VENV)/.dev ## execute the notebooks; fail if a cell fails
	$(BIN)/python -m notebooks.execute

demo: $(VENV)/.serve ## start a real local model (SmolLM2 on llama.cpp) and the router in front of it
	bash scripts/install_llama_cpp.sh $(BIN)/pip
	bash scripts/demo.sh $(BIN)

lock: ## re-resolve requirements/*.lock from pyproject.toml
	bash scripts/lock.sh

docker:
	docker build -t learned-router .

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache mlruns mlflow.db
