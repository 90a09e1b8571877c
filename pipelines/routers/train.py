"""`localroute train`: fit one router, calibrate it on val, score test, write its artifact.

Fitting is the library's (localroute.routers.training.fit, with the `routers.train` config
passed explicitly): light routers learn in process, bert and decoder through Ray Train; every
learned router's p is calibrated on the val split, then alpha and the threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from localroute.metrics import roc_auc, router_report
from localroute.routers import Router, make_router
from localroute.routers.alpha import AlphaConfig, choose_alpha, quality_target, side_times
from localroute.routers.calibration import brier, ece
from localroute.routers.config import RoutersConfig
from localroute.routers.training import fit
from pipelines.routers.splits import Splits, splits_for, subsample


def fit_router(
    name: str,
    splits: Splits,
    rcfg: RoutersConfig,
    seed: int,
    train_size: int | None = None,
    storage: Path | None = None,
    deployment=None,
) -> tuple[Router, dict]:
    """Fit, calibrate on val and describe one router; returns it with its fit metrics. alpha
    and theta are chosen under `deployment` (a DeploymentLatency: the models it will serve)."""
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
    if getattr(splits, "pairs", None):  # several sources, each for its pair
        router.info.update(pairs=splits.pairs, train_sources=splits.train_sources)
    # the candidates it is trained for and where their labels come from (serve checks them)
    n_labels = len(splits.train["text"]) + len(splits.val["text"])
    where = splits.label_sources or {}
    router.info.update(
        candidates=[
            {
                "role": role,
                "model": model,
                "labels": where.get(role, f"published ({model}, {splits.source})"),
            }
            for role, model in (("local", splits.local), ("cloud", splits.cloud))
        ],
        labels=splits.label_counts or {"published": n_labels, "measured": 0, "feedback": 0},
    )
    tcfg = replace(rcfg.train, storage_path=str(storage) if storage else rcfg.train.storage_path)
    # train.max_train_examples caps what Ray Train fine-tunes on; light routers see all of it
    cap = rcfg.train.max_train_examples if hasattr(router, "build") else None
    train = subsample(splits.train, train_size or cap, seed)
    fit_metrics = fit(router, train, splits.val, config=tcfg, calibration=rcfg.calibration)
    if rcfg.alpha is not None and len(splits.val["text"]) and "q_local" in splits.val:
        choose_alpha(router, splits.val, rcfg.alpha, deployment)  # alpha and theta, on val
    return router, fit_metrics


TARGETS = (0.5, 0.8)  # quality targets: fractions of the way from local-only to cloud-only


def deployment_of(cfg):
    """The latency inputs of the deployment the run config serves (its `serve:` section), which
    alpha and theta are chosen for; None without one."""
    serve = getattr(cfg, "serve", None)
    return serve.deployment_latency() if serve is not None else None


def score_test_split(
    router: Router, test: dict, acfg: AlphaConfig | None = None, deployment=None
) -> dict:
    """AUC, APGR, CPT, Brier, ECE on test; the decision at the artifact's (alpha, threshold)
    through localroute.core.policy; and with fusion at the router's alpha, the least cloud share
    reaching each quality target (TARGETS) on test."""
    from localroute.core.policy import decide, fused_score, p_sensitivity
    from localroute.core.sides import CLOUD
    from localroute.core.sweep import at_target, sweep

    acfg = acfg or AlphaConfig()
    p = router.score(test)
    report = router_report(p, test["q_local"], test["q_cloud"])
    t_local, t_cloud = side_times(test, router.info.get("source"), acfg, deployment)
    cloud = decide(fused_score(p, router.alpha, t_local, t_cloud), router.threshold) == CLOUD
    ql, qc = np.asarray(test["q_local"], float), np.asarray(test["q_cloud"], float)
    report.update(
        n_test=report.pop("n"),
        brier=brier(p, test["label"]),
        ece=ece(p, test["label"]),
        threshold=router.threshold,
        alpha=router.alpha,
        cloud_share=float(cloud.mean()),
        quality=float(np.where(cloud, qc, ql).mean()),
        p_sensitivity=p_sensitivity(p, router.alpha, t_cloud - t_local, router.threshold),
    )
    q = {"quality": (ql, qc), "latency_s": (t_local, t_cloud)}
    (curve,) = sweep(p, t_cloud - t_local, q, [router.alpha])
    for f in TARGETS:
        point = at_target(curve, "quality", quality_target(ql, qc, f), "cloud_share")
        report[f"cloud{int(f * 100)}_fusion"] = point["cloud_share"] if point else None
        report[f"latency{int(f * 100)}_fusion"] = point["latency_s"] if point else None
    return {
        k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in report.items()
    }


def train_one(
    cfg,
    name: str,
    source: str,
    pair: str,
    data_dir: Path,
    out: Path,
    promote_into: Path | None = None,
) -> dict:
    """`localroute train`: fit one router and write its artifact directory; with
    `promote_into` (a served artifact directory), also write it there when it beats the router
    there on the held-out labels (the promotion gate of the retrain loop)."""
    rcfg = cfg.routers
    splits = splits_for(data_dir, source, pair, rcfg, cfg.seed)
    pairs = getattr(splits, "pairs", None)
    what = (
        f"{len(pairs)} sources, each for its pair"
        if pairs
        else f"{splits.local} (local) vs {splits.cloud}"
    )
    print(
        f"   {splits.source}: {len(splits.train['text'])} train / {len(splits.val['text'])} val "
        f"/ {len(splits.test['text'])} test examples for {what}"
    )
    dep = deployment_of(cfg)
    router, fit_metrics = fit_router(
        name, splits, rcfg, cfg.seed, storage=out / "ray_train", deployment=dep
    )
    metrics = {
        "fit": fit_metrics,
        "calibration": router.info.get("calibration"),
        "alpha": router.info.get("alpha"),
        "test": score_test_split(router, splits.test, rcfg.alpha, dep),
        # (mean, std) of a uniform random router's test AUC over 20 seeds: the band to clear
        "random_band": random_band(splits.test),
    }
    router.save(out, metrics)
    metrics["artifact_id"] = router.artifact_id  # known once saved: metrics.json says it too
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    t = metrics["test"]
    print(
        f"   test: AUC {rounded(t['auc'])}, APGR {rounded(t['apgr'])}; at the artifact's alpha "
        f"{router.alpha:g}/s and threshold {t['threshold']:.3f} (chosen on val): cloud share "
        f"{t['cloud_share']:.2f}, quality {t['quality']:.3f}"
    )
    most = min(t["cloud_share"], 1 - t["cloud_share"])
    print(
        f"   p decides {t['p_sensitivity']:.0%} of test decisions at that point, of at most "
        f"{most:.0%} at this cloud share (the share that changes when p is replaced by its "
        "mean; near 0: the latency term alone decides)"
    )
    if router.info.get("degenerate"):
        print(f"   WARNING: router {name} is degenerate: {router.info['degenerate']}")
    band = metrics["random_band"]
    print(f"   random on the same test split: AUC {band[0]:.3f} +/- {band[1]:.3f} (20 seeds)")
    print(f"   calibrated p on test: Brier {rounded(t['brier'])}, ECE {rounded(t['ece'])}")
    print(f"   artifact: {out} ({router.artifact_id})")
    if promote_into is not None:
        metrics["promotion"] = promote(router, splits.test, Path(promote_into), metrics)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def promote(router: Router, test: dict, into: Path, metrics: dict) -> dict:
    """Write `router` into the served artifact directory `into` (weights, then router.json: a
    server watching it adopts it) only when it ranks the held-out labels better than the router
    there now by more than two standard errors of that router's AUC on the same rows (Hanley-
    McNeil); a directory without an artifact takes it. A retrain that is not clearly better is
    kept out: a few hundred live labels can lose to a router trained on thousands of a related
    pair, and a small test split cannot tell them apart."""
    from localroute.routers import RouterError, load_router
    from localroute.routers.calibration import auc_with_se

    y = test["label"]
    new = float(roc_auc(y, router.score(test)))
    try:
        current = load_router(into) if (into / "router.json").is_file() else None
    except RouterError:
        current = None  # an unreadable artifact is no router to keep
    old, se = auc_with_se(y, current.score(test)) if current is not None else (None, None)
    promoted = old is None or new > old + 2 * se
    if promoted:
        router.save(into, metrics)
    verdict = "promoted into" if promoted else "NOT promoted: it would not beat the router in"
    was = "none" if old is None else f"{old:.3f}"
    margin = "" if se is None else f" + 2 x {se:.3f}"
    print(f"   {verdict} {into} (held-out AUC {new:.3f} vs {was}{margin}, {len(y)} labels)")
    return {"promoted": promoted, "auc": new, "serving_auc": old, "serving_se": se, "n": len(y)}


def random_band(test: dict, seeds: int = 20) -> tuple[float, float]:
    """(mean, std) of the test AUC of the uniform random router over `seeds` seeds."""
    aucs = [roc_auc(test["label"], make_router("random", seed=s).score(test)) for s in range(seeds)]
    return float(np.mean(aucs)), float(np.std(aucs))


def rounded(x):
    return None if x is None else round(x, 3)
