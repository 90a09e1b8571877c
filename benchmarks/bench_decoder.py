"""The decoder router on SmolLM2-135M-Instruct against bert, mlp and task-prior (issue 12).

Per dataset (LLMRouter: llama-3.1-8b vs nemotron-51b; RouteLLM MMLU: Mixtral vs GPT-4): a seeded
test subset, a learning curve over training sizes, test AUC / ECE / APGR and wall time per epoch.
The frozen-backbone decoder pays one forward pass per text (reported apart, `feature_s`) and then
seconds per epoch; LoRA (peft, r=8, q/k/v/o) is capped to what fits on 2 cores. Results are
appended to a JSON file row by row (a partial run still reports) and rendered as Markdown.

    python benchmarks/bench_decoder.py --data runs/data --out runs/bench_decoder
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

DATASETS = {
    "llmrouter": "llama-3.1-8b-instruct,llama-3.1-nemotron-51b-instruct",
    "routellm_mmlu": "mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview",
}


def router_settings(max_length: int) -> dict[str, tuple[dict, dict]]:
    """router label -> (params, TrainConfig overrides)."""
    return {
        "task-prior": ({}, {}),
        "mlp": ({"embedder": "static"}, {}),
        "decoder-frozen": (
            {"model": "smollm2-135m", "mode": "frozen", "max_length": max_length},
            {"epochs": 10, "patience": 3, "lr": 1e-3, "batch_size": 32},
        ),
        "bert": ({"max_length": 128, "train_layers": 1}, {"epochs": 2, "lr": 2e-4}),
        "decoder-lora": (
            {"model": "smollm2-135m", "lora": {"r": 8}, "max_length": max_length},
            {"epochs": 1, "lr": 2e-4, "batch_size": 8},
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--out", default="runs/bench_decoder")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--routers", default="task-prior,mlp,decoder-frozen,bert")
    ap.add_argument("--sizes", default="500,2000,all")
    ap.add_argument("--heavy-max", type=int, default=2000, help="cap for Ray Train routers")
    ap.add_argument("--lora-max", type=int, default=500)
    ap.add_argument("--test", type=int, default=400)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--seed", type=int, default=20251125)
    args = ap.parse_args()

    from localroute.config import RayConfig
    from localroute.ray_runtime import init_ray
    from localroute.routers.config import RoutersConfig, TrainConfig
    from pipelines.routers import fit_router, load_splits, score_test_split, subsample

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    init_ray(RayConfig(num_cpus=4))
    base = TrainConfig(
        num_workers=2,
        cpus_per_worker=0.5,
        batch_size=16,
        max_val_examples=args.val,
        storage_path=str((out / "ray_train").resolve()),
    )
    settings = router_settings(args.max_length)
    for source in args.datasets.split(","):
        pair = DATASETS[source]
        splits = load_splits(Path(args.data), source, pair, RoutersConfig(), args.seed)
        n_train = len(splits.train["text"])
        splits.val = subsample(splits.val, args.val, 0)
        splits.test = subsample(splits.test, args.test, 0)
        print(f"== {source} ({pair}): {n_train} train, {args.val} val, {args.test} test")
        for label in args.routers.split(","):
            params, over = settings[label]
            name = "decoder" if label.startswith("decoder") else label
            heavy = name in ("bert", "decoder")
            cap = args.lora_max if label == "decoder-lora" else args.heavy_max
            for size in args.sizes.split(","):
                n = n_train if size == "all" else min(int(size), n_train)
                if heavy and n > cap:
                    print(f"   {label} n={n}: skipped (cap {cap} on this machine)")
                    continue
                rcfg = RoutersConfig(train=replace(base, **over), params={name: params})
                t0 = time.perf_counter()
                router, fit_metrics = fit_router(name, splits, rcfg, 0, train_size=n)
                wall = time.perf_counter() - t0
                report = score_test_split(router, splits.test)
                info = router.info
                epochs = int(
                    info.get("train_run", {}).get("epochs_run")
                    or fit_metrics.get("epochs")
                    or fit_metrics.get("epochs_run")
                    or 1
                )
                feature_s = float(info.get("feature_seconds", 0.0))
                row = {
                    "source": source,
                    "pair": pair,
                    "router": label,
                    "train_size": n,
                    "auc": report["auc"],
                    "ece": report["ece"],
                    "apgr": report["apgr"],
                    "brier": report["brier"],
                    "epochs": epochs,
                    "fit_s": round(float(info.get("fit_seconds", wall)), 1),
                    "feature_s": round(feature_s, 1),
                    "s_per_epoch": round(
                        (float(info.get("fit_seconds", wall)) - feature_s) / epochs, 1
                    ),
                    "max_length": params.get("max_length"),
                }
                print(
                    f"   {label} n={n}: AUC {row['auc']:.3f} ECE {row['ece']:.3f} "
                    f"APGR {row['apgr']:.3f}  {row['s_per_epoch']}s/epoch x {epochs}"
                    + (f" + features {feature_s:.0f}s" if feature_s else ""),
                    flush=True,
                )
                with results_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    print(render(results_path))


def render(results_path: Path) -> str:
    rows = [json.loads(line) for line in results_path.read_text().splitlines() if line.strip()]
    lines = [
        "| data | router | n train | AUC | ECE | APGR | s/epoch | epochs | features s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['source']} | {r['router']} | {r['train_size']} | {r['auc']:.3f} | "
            f"{r['ece']:.3f} | {r['apgr']:.3f} | {r['s_per_epoch']} | {r['epochs']} | "
            f"{r['feature_s'] or ''} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
