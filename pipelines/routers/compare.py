"""`localroute evaluate-routers`: several routers on one source (or held out), against random,
task-prior and the oracle, with learning curves and plots.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from localroute.metrics import quality_vs_cloud_share, roc_auc
from localroute.routers import make_router
from localroute.routers.calibration import reliability
from localroute.routers.config import RoutersConfig
from pipelines.routers.splits import Splits, splits_for
from pipelines.routers.train import (
    deployment_of,
    fit_router,
    random_band,
    rounded,
    score_test_split,
)


def evaluate_routers(
    cfg,
    source: str,
    pair: str,
    names: list[str],
    data_dir: Path,
    out: Path,
    train_sizes: list[int] | None = None,
    holdout_source: str | None = None,
) -> dict:
    """Fit every router on one split and report them side by side, with random and oracle.

    `source` may be a list or "all" (one router over several sources); with `holdout_source`
    the routers train on the other sources and are tested on that one's test split.
    """
    rcfg = cfg.routers
    splits = splits_for(data_dir, source, pair, rcfg, cfg.seed, holdout_source)
    out.mkdir(parents=True, exist_ok=True)
    wanted = list(dict.fromkeys([*names, "random", "oracle", "task-prior"]))
    metrics, curves, reliab = {}, {}, {}
    dep = deployment_of(cfg)  # alpha and theta for the deployment the config serves
    for name in wanted:
        router, fit_metrics = fit_router(
            name, splits, rcfg, cfg.seed, storage=out / "ray_train", deployment=dep
        )
        metrics[name] = {
            **score_test_split(router, splits.test, rcfg.alpha, dep),
            "fit": fit_metrics,
            "fit_seconds": router.info["fit_seconds"],
        }
        p_test = router.score(splits.test)
        curve = quality_vs_cloud_share(
            p_test, splits.test["q_local"], splits.test["q_cloud"], n_points=51
        )
        if name not in ("random", "oracle"):
            reliab[name] = reliability(p_test, splits.test["label"])
        curves[name] = {"cloud_share": curve.cloud_share.tolist(), "quality": curve.value.tolist()}
        auc = metrics[name]["auc"]
        print(
            f"   {name:<13} auc {auc if auc is None else round(auc, 3)}  "
            f"apgr {rounded(metrics[name]['apgr'])}  cpt50 {rounded(metrics[name]['cpt50'])}  "
            f"({router.info['fit_seconds']} s)"
        )
    result = {
        "source": splits.source,
        "holdout_source": holdout_source,
        "train_sources": getattr(splits, "train_sources", [splits.source]),
        "pairs": getattr(splits, "pairs", None),
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
    result["random_20_seeds"] = random_seeds(splits, rcfg, 20)
    if train_sizes:
        result["learning_curve"] = learning_curve(splits, names, rcfg, cfg.seed, train_sizes, out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    result["reliability"] = reliab
    (out / "report.json").write_text(json.dumps({**result, "curves": curves}, indent=2) + "\n")
    plot_curves(curves, result, out / "quality_vs_cloud_share.png")
    plot_reliability(reliab, result, out / "reliability.png")
    (out / "summary.md").write_text(summary_text(result))
    if train_sizes:
        plot_learning_curve(result["learning_curve"], result, out / "learning_curve.png")
    return result


def random_seeds(splits: Splits, rcfg: RoutersConfig, seeds: int = 20) -> dict:
    """Every test metric of the random router over `seeds` seeds: {metric: [mean, std]}."""
    rows = [
        score_test_split(fit_router("random", splits, rcfg, s)[0], splits.test, rcfg.alpha)
        for s in range(seeds)
    ]
    out = {}
    for k in ("auc", "apgr", "cpt50", "ece", "cloud50_fusion", "cloud80_fusion"):
        v = np.array([np.nan if r.get(k) is None else r[k] for r in rows], float)
        out[k] = [float(np.nanmean(v)), float(np.nanstd(v))] if np.isfinite(v).any() else None
    return out


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


def plot_reliability(reliab: dict, result: dict, path: Path) -> None:
    """Reliability diagram on test: mean calibrated p against the observed rate of "needs the
    cloud" per bin of p (the diagonal is perfect calibration), marker area ~ share of rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    for name, pts in reliab.items():
        xs, ys = [b["p"] for b in pts], [b["observed"] for b in pts]
        ece_ = sum(b["share"] * abs(b["p"] - b["observed"]) for b in pts)
        line = ax.plot(xs, ys, "-", label=f"{name} (ECE {ece_:.3f})")[0]
        ax.scatter(xs, ys, s=[400 * b["share"] + 8 for b in pts], color=line.get_color())
    ax.set_xlabel("mean calibrated p = P(needs the cloud), per bin")
    ax.set_ylabel("observed fraction needing the cloud")
    ax.set_title(f"reliability on test: {result['source']}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
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
        *(
            [
                f"Leave one source out: trained on {', '.join(result['train_sources'])}; tested "
                f"on {result['holdout_source']}; training prompts in its test split dropped.",
                "",
            ]
            if result.get("holdout_source")
            else []
        ),
        f"{result['n_train']} train, {result['n_val']} val, {result['n_test']} test examples "
        "(contaminated prompts dropped from test). Brier and ECE (10 bins) score the calibrated p "
        "(Platt scaling fitted on the val split).",
        "",
        "Cloud share at 50%/80%: the least cloud share reaching that quality target (a fraction "
        "of the way from local-only to cloud-only) with fusion at the router's alpha (chosen "
        "on val, 1/s).",
        "",
        "| router | AUC | F1 | APGR | CPT(50%) | CPT(80%) | AIQ | Brier | ECE | alpha "
        "| cloud @50% | cloud @80% |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["routers"].items():
        lines.append(
            f"| {name} | {rounded(m['auc'])} | {rounded(m['f1'])} | {rounded(m['apgr'])} | "
            f"{rounded(m['cpt50'])} | {rounded(m['cpt80'])} | {rounded(m['aiq'])} | "
            f"{rounded(m.get('brier'))} | {rounded(m.get('ece'))} | {m.get('alpha', 0):g} | "
            f"{rounded(m.get('cloud50_fusion'))} | {rounded(m.get('cloud80_fusion'))} |"
        )
    r20 = result.get("random_20_seeds") or {}
    if r20:
        cell = {k: ("-" if v is None else f"{v[0]:.3f} ± {v[1]:.3f}") for k, v in r20.items()}
        lines.append(
            f"| random, 20 seeds | {cell['auc']} | | {cell['apgr']} | {cell['cpt50']} | | | | "
            f"{cell['ece']} | | {cell['cloud50_fusion']} | {cell['cloud80_fusion']} |"
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
            lines.append(f"| {name} | " + " | ".join(str(rounded(by.get(n))) for n in sizes) + " |")
    return "\n".join(lines) + "\n"
