"""Train one router (`localroute train`) or compare several (`localroute evaluate-routers`).

Splits: the source's train split fits, its val split (else a seeded tenth of train) calibrates
and early-stops, its test split (contaminated prompts dropped) is what every figure reports.
Fitting is the library's (localroute.routers.training.fit, with the `routers.train` config
passed explicitly): light routers (knn, mlp, mf, task-prior) learn in process, bert and decoder
through Ray Train; every learned router's p is calibrated on the val split, then the threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from localroute.data.splits import hashed_split
from localroute.errors import DataError
from localroute.metrics import quality_vs_cloud_share, roc_auc, router_report
from localroute.routers import Router, make_router
from localroute.routers.calibration import brier, ece
from localroute.routers.config import RoutersConfig
from localroute.routers.examples import pair_examples, score_matrix, split_of, to_batch
from localroute.routers.training import fit


@dataclass
class Splits:
    source: str
    local: str
    cloud: str
    models: list[str]
    train: dict
    val: dict
    test: dict


def parse_pair(pair: str) -> tuple[str, str]:
    parts = [p.strip() for p in pair.split(",")]
    if len(parts) != 2 or not all(parts):
        raise DataError(f"--pair must be LOCAL,CLOUD (two model names), got {pair!r}")
    return parts[0], parts[1]


def load_splits(data_dir: Path, source: str, pair: str, rcfg: RoutersConfig, seed: int) -> Splits:
    local, cloud = parse_pair(pair)
    examples = pair_examples(data_dir, source, local, cloud, rcfg.rule, rcfg.bar)
    models, matrix = score_matrix(data_dir, source, examples)
    examples = examples.append_column("all_scores", pa.array(list(matrix), pa.list_(pa.float32())))

    def batch(table: pa.Table) -> dict:
        out = to_batch(table.drop_columns(["all_scores"]))
        out["all_scores"] = np.array(table["all_scores"].to_pylist(), np.float32).reshape(
            table.num_rows, len(models)
        )
        return out

    train, val = split_of(examples, "train"), split_of(examples, "val")
    if val.num_rows == 0:  # a source with only train/test: a seeded tenth of train calibrates
        fold = np.array(
            [
                hashed_split(t, seed + 1, (("val", 0.1), ("train", 0.9)))
                for t in train["text"].to_pylist()
            ]
        )
        val, train = train.filter(pa.array(fold == "val")), train.filter(pa.array(fold == "train"))
    test = split_of(examples, "test", drop_contaminated=True)
    if train.num_rows == 0:
        raise DataError(f"source {source!r} has no training examples for the pair {local}, {cloud}")
    if test.num_rows == 0:
        raise DataError(f"source {source!r} has no test examples for the pair {local}, {cloud}")
    return Splits(source, local, cloud, models, batch(train), batch(val), batch(test))


def subsample(batch: dict, n: int | None, seed: int) -> dict:
    size = len(batch["text"])
    if n is None or n >= size:
        return batch
    idx = np.sort(np.random.default_rng(seed).permutation(size)[:n])
    return {k: v[idx] for k, v in batch.items()}


def fit_router(
    name: str,
    splits: Splits,
    rcfg: RoutersConfig,
    seed: int,
    train_size: int | None = None,
    storage: Path | None = None,
) -> tuple[Router, dict]:
    """Fit, calibrate on val and describe one router; returns it with its fit metrics."""
    from dataclasses import replace

    router = make_router(name, seed=seed, **rcfg.params.get(name, {}))
    router.info.update(
        source=splits.source,
        local=splits.local,
        cloud=splits.cloud,
        models=splits.models,
        rule=rcfg.rule,
        bar=rcfg.bar,
    )
    tcfg = replace(rcfg.train, storage_path=str(storage) if storage else rcfg.train.storage_path)
    # train.max_train_examples caps what Ray Train fine-tunes on; light routers see all of it
    cap = rcfg.train.max_train_examples if hasattr(router, "build") else None
    train = subsample(splits.train, train_size or cap, seed)
    fit_metrics = fit(router, train, splits.val, config=tcfg, calibration=rcfg.calibration)
    return router, fit_metrics


def score_test_split(router: Router, test: dict) -> dict:
    p = router.score(test)
    report = router_report(p, test["q_local"], test["q_cloud"])
    cloud = p > router.threshold
    report.update(
        n_test=report.pop("n"),
        brier=brier(p, test["label"]),
        ece=ece(p, test["label"]),
        threshold=router.threshold,
        cloud_share=float(cloud.mean()),
        quality=float(np.where(cloud, test["q_cloud"], test["q_local"]).mean()),
    )
    return {
        k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in report.items()
    }


def train_one(cfg, name: str, source: str, pair: str, data_dir: Path, out: Path) -> dict:
    """`localroute train`: fit one router and write its artifact directory."""
    rcfg = cfg.routers
    splits = load_splits(data_dir, source, pair, rcfg, cfg.seed)
    print(
        f"   {source}: {len(splits.train['text'])} train / {len(splits.val['text'])} val / "
        f"{len(splits.test['text'])} test examples for {splits.local} (local) vs {splits.cloud}"
    )
    router, fit_metrics = fit_router(name, splits, rcfg, cfg.seed, storage=out / "ray_train")
    metrics = {
        "fit": fit_metrics,
        "calibration": router.info["calibration"],
        "test": score_test_split(router, splits.test),
        # (mean, std) of a uniform random router's test AUC over 20 seeds: the band to clear
        "random_band": random_band(splits.test),
    }
    router.save(out, metrics)
    metrics["artifact_id"] = router.artifact_id  # known once saved: metrics.json says it too
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    t = metrics["test"]
    print(
        f"   test: AUC {_r(t['auc'])}, APGR {_r(t['apgr'])}; at the calibrated threshold "
        f"{t['threshold']:.3f}: cloud share {t['cloud_share']:.2f}, quality {t['quality']:.3f}"
    )
    band = metrics["random_band"]
    print(f"   random on the same test split: AUC {band[0]:.3f} +/- {band[1]:.3f} (20 seeds)")
    print(f"   calibrated p on test: Brier {_r(t['brier'])}, ECE {_r(t['ece'])}")
    print(f"   artifact: {out} ({router.artifact_id})")
    return metrics


def evaluate_routers(
    cfg,
    source: str,
    pair: str,
    names: list[str],
    data_dir: Path,
    out: Path,
    train_sizes: list[int] | None = None,
) -> dict:
    """Fit every router on one split and report them side by side, with random and oracle."""
    rcfg = cfg.routers
    splits = load_splits(data_dir, source, pair, rcfg, cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    wanted = list(dict.fromkeys([*names, "random", "oracle", "task-prior"]))
    metrics, curves = {}, {}
    for name in wanted:
        router, fit_metrics = fit_router(name, splits, rcfg, cfg.seed, storage=out / "ray_train")
        metrics[name] = {
            **score_test_split(router, splits.test),
            "fit": fit_metrics,
            "fit_seconds": router.info["fit_seconds"],
        }
        curve = quality_vs_cloud_share(
            router.score(splits.test), splits.test["q_local"], splits.test["q_cloud"], n_points=51
        )
        curves[name] = {"cloud_share": curve.cloud_share.tolist(), "quality": curve.value.tolist()}
        auc = metrics[name]["auc"]
        print(
            f"   {name:<13} auc {auc if auc is None else round(auc, 3)}  "
            f"apgr {_r(metrics[name]['apgr'])}  cpt50 {_r(metrics[name]['cpt50'])}  "
            f"({router.info['fit_seconds']} s)"
        )
    result = {
        "source": source,
        "local": splits.local,
        "cloud": splits.cloud,
        "n_train": len(splits.train["text"]),
        "n_val": len(splits.val["text"]),
        "n_test": len(splits.test["text"]),
        "routers": metrics,
        "versus_task_prior": versus_task_prior(metrics),
    }
    # One random draw is noisy on a small test split: its AUC over 20 seeds says how noisy.
    mean, std = random_band(splits.test)
    result["random_auc_20_seeds"] = {"mean": mean, "std": std}
    if train_sizes:
        result["learning_curve"] = learning_curve(splits, names, rcfg, cfg.seed, train_sizes, out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "report.json").write_text(json.dumps({**result, "curves": curves}, indent=2) + "\n")
    plot_curves(curves, result, out / "quality_vs_cloud_share.png")
    (out / "summary.md").write_text(summary_text(result))
    if train_sizes:
        plot_learning_curve(result["learning_curve"], result, out / "learning_curve.png")
    return result


def random_band(test: dict, seeds: int = 20) -> tuple[float, float]:
    """(mean, std) of the test AUC of the uniform random router over `seeds` seeds."""
    aucs = [roc_auc(test["label"], make_router("random", seed=s).score(test)) for s in range(seeds)]
    return float(np.mean(aucs)), float(np.std(aucs))


def _r(x):
    return None if x is None else round(x, 3)


def versus_task_prior(metrics: dict) -> dict:
    """How each learned router's AUC compares with the task prior's, stated plainly."""
    base = metrics["task-prior"]["auc"]
    out = {}
    for name, m in metrics.items():
        if name in ("random", "oracle", "task-prior", "always-local", "always-cloud"):
            continue
        if m["auc"] is None or base is None:
            out[name] = "AUC undefined (one class only in the test split)"
            continue
        delta = m["auc"] - base
        verdict = "beats" if delta > 0.01 else "is worse than" if delta < -0.01 else "matches"
        out[name] = f"{name} {verdict} task-prior: AUC {m['auc']:.3f} vs {base:.3f} ({delta:+.3f})"
    return out


def learning_curve(
    splits: Splits, names: list[str], rcfg: RoutersConfig, seed: int, sizes: list[int], out: Path
) -> dict:
    """Test AUC of each trainable router fitted on growing subsets of the training split."""
    curve: dict[str, list] = {}
    for name in names:
        if not make_router(name).trainable:
            continue
        curve[name] = []
        for n in sorted(sizes):
            n_eff = min(n, len(splits.train["text"]))
            router, _ = fit_router(
                name, splits, rcfg, seed, train_size=n_eff, storage=out / "ray_train"
            )
            auc = roc_auc(splits.test["label"], router.score(splits.test))
            curve[name].append({"train_size": n_eff, "auc": float(auc)})
            print(f"   learning curve {name} n={n_eff}: auc {auc:.3f}")
    return curve


def plot_curves(curves: dict, result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, c in curves.items():
        style = ":" if name in ("random", "oracle") else "-"
        ax.plot(c["cloud_share"], c["quality"], style, label=name)
    ax.set_xlabel("cloud share (fraction of queries sent to the cloud model)")
    ax.set_ylabel("mean quality on the test split")
    ax.set_title(f"{result['source']}: {result['local']} vs {result['cloud']}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning_curve(curve: dict, result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in curve.items():
        ax.plot([p["train_size"] for p in points], [p["auc"] for p in points], "o-", label=name)
    ax.axhline(result["random_auc_20_seeds"]["mean"], color="grey", ls=":", label="random")
    ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel("test ROC-AUC")
    ax.set_title(f"learning curve: {result['source']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_text(result: dict) -> str:
    lines = [
        f"# Routers on {result['source']}: {result['local']} (local) vs {result['cloud']} (cloud)",
        "",
        f"{result['n_train']} train, {result['n_val']} val, {result['n_test']} test examples "
        "(contaminated prompts dropped from test). Brier and ECE (10 bins) score the calibrated p "
        "(Platt scaling fitted on the val split).",
        "",
        "| router | AUC | F1 | APGR | CPT(50%) | CPT(80%) | AIQ | Brier | ECE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["routers"].items():
        lines.append(
            f"| {name} | {_r(m['auc'])} | {_r(m['f1'])} | {_r(m['apgr'])} | "
            f"{_r(m['cpt50'])} | {_r(m['cpt80'])} | {_r(m['aiq'])} | "
            f"{_r(m.get('brier'))} | {_r(m.get('ece'))} |"
        )
    lines += [
        "",
        "Against the task prior (the mean label of the query's task on the training split):",
        "",
    ]
    lines += [f"- {v}" for v in result["versus_task_prior"].values()]
    rand = result["random_auc_20_seeds"]
    lines += [
        "",
        f"One random draw is noisy: over 20 seeds random's AUC is {rand['mean']:.3f} "
        f"(std {rand['std']:.3f}).",
    ]
    if result.get("learning_curve"):
        sizes = sorted({p["train_size"] for c in result["learning_curve"].values() for p in c})
        lines += [
            "",
            "Learning curve (test AUC by training-set size):",
            "",
            "| router | " + " | ".join(str(n) for n in sizes) + " |",
            "|---|" + "---|" * len(sizes),
        ]
        for name, points in result["learning_curve"].items():
            by = {p["train_size"]: p["auc"] for p in points}
            lines.append(f"| {name} | " + " | ".join(str(_r(by.get(n))) for n in sizes) + " |")
    return "\n".join(lines) + "\n"
