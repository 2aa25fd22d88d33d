# One place for the project's commands. Every target sets up what it needs first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch; a plain `torch` requirement would pull a multi-GB CUDA build.
TORCH_CPU ?= torch==2.13.0

.PHONY: setup test lint typecheck demo bench pretrained install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_CPU)"
	$(BIN)/pip install -q -e ".[train,dev,aedat4,view,cameras,formats,bridges]"
	$(BIN)/pip install -q --no-deps "neurobench>=2.3"  # the [bench] extra without its torchaudio (pyproject.toml)
	touch $@

setup: $(VENV)/.installed  ## create .venv with everything (CPU torch included)

test: setup  ## run the test suite
	$(BIN)/python -m pytest -q

lint: setup  ## ruff and mypy
	$(BIN)/ruff check daemon models clients tests benchmarks
	$(BIN)/mypy

demo: setup  ## daemon on the emulator with the bundled model, fed replayed synthetic recordings
	$(BIN)/s2gesture demo

bench: setup  ## measure and write BENCHMARKS.md
	$(BIN)/python benchmarks/run_all.py

pretrained: setup  ## reproduce models/pretrained/ (synthetic data, ~2 h on 2 cores, resumable)
	$(BIN)/python -m s2gesture.models.pretrained_recipe

install:  ## install s2gestured as a systemd service (/opt/s2gesture, /etc/s2gesture; run as root)
	systemd/install.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
