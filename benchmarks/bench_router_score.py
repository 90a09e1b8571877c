"""Router decision speed, text in -> decision out: one request at a time (p50/p99) and batched
(decisions/s), pinned to one CPU core, with the load average printed beside the figures.

Fits each router (default: `gbt`, the default router of configs/local.yaml, on MiniLM token
vectors; `--routers gbt,knn,mlp --embedders static,minilm` for the trade of speed against
accuracy) on RouteLLM MMLU (Mixtral vs GPT-4), then routes real test prompts never embedded
before (the embedding cache is off while timing), end to end as the server does: the chat
messages -> features.request_batch -> router.score (calibrated p) -> core.policy.decide_one
(eqs. 6-7, 11-12 at the router's alpha and threshold). Batched: one batch of `--batch` requests
-> score -> core.policy.route. Each row prints the router's test AUC beside its speed.
Run: `.venv/bin/python benchmarks/bench_router_score.py [--data runs/data]`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core: no tokenizer thread pool
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from localroute.config import bundled  # noqa: E402
from localroute.core.policy import decide_one, route  # noqa: E402
from localroute.core.profiles import load_latency_model  # noqa: E402
from localroute.metrics import roc_auc  # noqa: E402
from localroute.routers import embedders as embed_mod  # noqa: E402
from localroute.routers import make_router  # noqa: E402
from localroute.routers.config import RoutersConfig  # noqa: E402
from localroute.routers.features import request_batch  # noqa: E402
from pipelines.routers import fit_router, load_splits, subsample  # noqa: E402

PAIR = "mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--singles", type=int, default=300)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--routers", default="gbt", help="comma-separated")
    ap.add_argument("--embedders", default="static", help="comma-separated: static, minilm")
    ap.add_argument("--train", type=int, default=None, help="training rows (default: all)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    torch.set_num_threads(1)
    rcfg = RoutersConfig()
    splits = load_splits(args.data, "routellm_mmlu", PAIR, rcfg, seed=0)
    if args.train:
        splits.train = subsample(splits.train, args.train, 0)
    test = splits.test
    texts = list(test["text"])
    model = load_latency_model(bundled("links.yaml"), "paper-table1", "mmlu", "5g")
    out = {
        "threads": torch.get_num_threads(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "n_train": len(splits.train["text"]),
        "load_average_before": os.getloadavg(),
        "results": [],
    }
    for embedder in args.embedders.split(","):
        for name in args.routers.split(","):
            os.environ.pop("LOCALROUTE_CACHE", None)
            params = {"embedder": embedder} if make_router(name).trainable else {}
            if name == "knn":
                params["k"] = 25
            rc = RoutersConfig(params={name: params})
            router, _ = fit_router(name, splits, rc, 0)
            auc = roc_auc(test["label"], router.score(test))
            os.environ["LOCALROUTE_CACHE"] = "off"  # from here every text is embedded for real
            embed_mod._cache.clear()

            def decision(text: str, router=router) -> str:
                batch = request_batch([{"role": "user", "content": text}])
                p = float(router.score(batch)[0])
                pw = int(batch["prompt_words"][0])
                return decide_one(p, router.threshold, router.alpha, pw, 0, None, model).side

            for t in texts[:20]:  # warm-up
                decision(t)
            lat, cpu = [], []  # wall clock, and this process's CPU time (what one core spent)
            for t in texts[20 : 20 + args.singles]:
                t0, c0 = time.perf_counter(), time.process_time()
                decision(t)
                lat.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            batch_texts = [f"{t} [{i}]" for i, t in enumerate((texts * 3)[: args.batch])]
            embed_mod._cache.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            rows = [request_batch([{"role": "user", "content": t}]) for t in batch_texts]
            batch = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
            p = router.score(batch)
            route(model, p, router.alpha, router.threshold, batch["prompt_words"])
            qps = len(batch_texts) / (time.perf_counter() - t0)
            cpu_qps = len(batch_texts) / max(time.process_time() - c0, 1e-9)
            row = {
                "router": name,
                "embedder": embedder,
                "test_auc": float(auc),
                "alpha": router.alpha,
                "single_p50_ms": 1e3 * float(np.percentile(lat, 50)),
                "single_p99_ms": 1e3 * float(np.percentile(lat, 99)),
                "batched_decisions_per_s": qps,
                "single_cpu_p50_ms": 1e3 * float(np.percentile(cpu, 50)),
                "batched_decisions_per_cpu_s": cpu_qps,
                "load_average": os.getloadavg(),
            }
            out["results"].append(row)
            print(
                f"{name:5s} {embedder:7s} AUC {auc:.3f}  decision p50 {row['single_p50_ms']:6.2f} "
                f"ms (CPU {row['single_cpu_p50_ms']:.2f} ms)  p99 {row['single_p99_ms']:6.2f} ms  "
                f"batched {qps:7.0f}/s ({cpu_qps:.0f} per CPU second)  "
                f"(load average {' '.join(f'{x:.2f}' for x in row['load_average'])})"
            )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
