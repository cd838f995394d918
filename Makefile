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

.PHONY: demo test lint format clean gpu-check

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

# Everything a lent GPU machine should run, in one command (docs/status.md, issue 15):
# the gpu-marked tests, the whole suite on the GPU, and the GPU speed benchmark.
gpu-check: $(VENV)/.installed
	$(BIN)/python -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'; print(torch.cuda.get_device_name(0), torch.__version__)"
	$(BIN)/python -m pytest -m gpu -rs tests/gpu
	$(BIN)/python -m pytest -x -q
	$(BIN)/python benchmarks/gpu_distill.py --out runs/bench/gpu-distill

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs build *.egg-info .pytest_cache .ruff_cache
