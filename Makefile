# Two commands set up everything: `make demo` and `make test`.
# Both create .venv if missing and install the package with its dev extra; the install is
# skipped when pyproject.toml has not changed since the last one.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The PyTorch build to install first. Override for another platform, e.g.
#   make demo TORCH="torch==2.9.1 torchvision==0.24.1"
TORCH ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: demo test lint format clean gpu-check gpu-carry

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/compress run configs/quickstart.yaml --output runs/quickstart

test: $(VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything a lent GPU machine should run, in one command (scripts/gpu-check.sh; docs/status.md):
# the gpu tests, the speed benchmark, the full-data accuracy table, on the machine's own python3.
# `make gpu-carry` first, here: the wheels and data that machine lacks, in ignored folders that
# the device call carries (.whl, data).
gpu-check:
	bash scripts/gpu-check.sh

gpu-carry: $(VENV)/.installed
	mkdir -p .whl data/fashion-mnist
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux2014_x86_64 --platform any -d .whl torch-pruning==1.6.1
	cp -n /usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs build *.egg-info .pytest_cache .ruff_cache
