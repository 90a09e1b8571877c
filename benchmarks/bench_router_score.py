"""Router scoring speed: one query at a time (p50/p99) and batched (queries/s), on one CPU core.

Fits `knn` and `mlp` with each embedder ("static" MiniLM token vectors, and the full MiniLM
encoder) on RouteLLM MMLU (Mixtral vs GPT-4), then scores real test prompts never embedded
before (the embedding cache is off while scoring), end to end: text -> embedding -> p, and
prints each one's test AUC beside its speed.
Run: `.venv/bin/python benchmarks/bench_router_score.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core: no tokenizer thread pool

import numpy as np  # noqa: E402
import torch  # noqa: E402

from localroute.metrics import roc_auc  # noqa: E402
from localroute.routers import embedders as embed_mod  # noqa: E402
from localroute.routers import make_router  # noqa: E402
from localroute.routers.config import RoutersConfig  # noqa: E402
from pipelines.routers import load_splits, subsample  # noqa: E402

PAIR = "mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--singles", type=int, default=300)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--embedders", default="static,minilm", help="comma-separated")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one CPU core
    splits = load_splits(args.data, "routellm_mmlu", PAIR, RoutersConfig(), seed=0)
    train, val, test = subsample(splits.train, 3000, 0), subsample(splits.val, 500, 0), splits.test
    texts = list(test["text"])
    out = {"threads": torch.get_num_threads(), "n_train": len(train["text"]), "results": []}
    for embedder in args.embedders.split(","):
        for name in ("knn", "mlp"):
            os.environ.pop("LOCALROUTE_CACHE", None)
            router = make_router(name, embedder=embedder, **({"k": 25} if name == "knn" else {}))
            router.fit(train, val)
            auc = roc_auc(test["label"], router.score(test))
            os.environ["LOCALROUTE_CACHE"] = "off"  # from here every text is embedded for real
            embed_mod._cache.clear()
            for t in texts[:20]:  # warm-up
                router.score({"text": np.array([t])})
            lat = []
            for t in texts[20 : 20 + args.singles]:
                t0 = time.perf_counter()
                router.score({"text": np.array([t])})
                lat.append(time.perf_counter() - t0)
            batch = np.array([f"{t} [{i}]" for i, t in enumerate((texts * 3)[: args.batch])])
            embed_mod._cache.clear()
            t0 = time.perf_counter()
            router.score({"text": batch})
            qps = len(batch) / (time.perf_counter() - t0)
            row = {
                "router": name,
                "embedder": embedder,
                "test_auc": float(auc),
                "single_p50_ms": 1e3 * float(np.percentile(lat, 50)),
                "single_p99_ms": 1e3 * float(np.percentile(lat, 99)),
                "batched_qps": qps,
            }
            out["results"].append(row)
            print(
                f"{name:4s} {embedder:7s} AUC {auc:.3f}  single p50 {row['single_p50_ms']:7.2f} "
                f"ms  p99 {row['single_p99_ms']:7.2f} ms  batched {qps:8.0f} q/s"
            )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
