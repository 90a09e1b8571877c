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
from localroute.routers.alpha import AlphaConfig, choose_alpha, quality_target, side_times
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


def load_splits(
    data_dir: Path, source: str, pair: str, rcfg: RoutersConfig, seed: int, need_train=True
) -> Splits:
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
    if train.num_rows == 0 and need_train:
        raise DataError(f"source {source!r} has no training examples for the pair {local}, {cloud}")
    if test.num_rows == 0:
        raise DataError(f"source {source!r} has no test examples for the pair {local}, {cloud}")
    return Splits(source, local, cloud, models, batch(train), batch(val), batch(test))


MIXTRAL, GPT4 = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
# The pair each source with outcomes is routed for when several sources train one router.
DEFAULT_PAIRS = {
    "routellm_mmlu": f"{MIXTRAL},{GPT4}",
    "routellm_gsm8k": f"{MIXTRAL},{GPT4}",
    "routellm_mtbench": f"{MIXTRAL},{GPT4}",
    # GPT-4's outcomes here are RouteLLM's, on test questions only: test (holdout) sources
    "routerdc_mmlu": f"meta-llama/Meta-Llama-3-8B,{GPT4}",
    "routerdc_gsm8k": f"meta-llama/Meta-Llama-3-8B,{GPT4}",
    "llmrouter": "llama-3.1-8b-instruct,llama-3.1-nemotron-51b-instruct",
}
SHARED = (  # the columns every source's batch has, concatenated across sources
    "query_id", "turn", "task", "split", "contaminated", "text", "context", "prompt_words",
    "context_words", "q_local", "q_cloud", "label",
)  # fmt: skip


def source_list(data_dir: Path, data: str) -> list[str]:
    """`--data`: one source, a comma-separated list, or "all" (every source of DEFAULT_PAIRS
    with outcome rows in the build)."""
    if data == "all":
        have = {p.stem for p in (Path(data_dir) / "outcomes").glob("*.parquet")}
        return [s for s in DEFAULT_PAIRS if s in have]
    return [s.strip() for s in data.split(",") if s.strip()]


def pair_for(data_dir: Path, source: str, pair: str | None) -> str:
    """`pair` where the source has outcomes of both its models, else the source's default."""
    if pair and pair != "auto":
        from localroute.data.build import read_table

        models = set(read_table(data_dir, "outcomes", [source])["model"].unique().to_pylist())
        if set(parse_pair(pair)) <= models or source not in DEFAULT_PAIRS:
            return pair
    if source not in DEFAULT_PAIRS:
        raise DataError(f"source {source!r}: no default pair; give --pair LOCAL,CLOUD")
    return DEFAULT_PAIRS[source]


def concat(batches: list[dict]) -> dict:
    keys = [k for k in (*SHARED, "source", "weight") if all(k in b for b in batches)]
    return {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in keys}


def tagged(batch: dict, source: str) -> dict:
    return {**batch, "source": np.full(len(batch["text"]), source, dtype=object)}


def balanced(batch: dict) -> dict:
    """A `weight` column giving each label half of the source's weight (mean weight 1): with
    several sources, whose pairs need the cloud at very different rates (0.15 to 0.8), a router
    would otherwise learn which source a prompt looks like instead of how hard it is."""
    y = np.asarray(batch["label"], np.float64)
    rate = float(y.mean()) if y.size else 0.5
    one = rate in (0.0, 1.0)
    w = np.ones(y.size) if one else np.where(y > 0, 0.5 / rate, 0.5 / (1.0 - rate))
    return {**batch, "weight": w}


def load_multi(
    data_dir: Path,
    sources: list[str],
    pair: str | None,
    rcfg: RoutersConfig,
    seed: int,
    holdout: str | None = None,
) -> Splits:
    """One router's splits over several sources, each for its own pair (a `source` column says
    whose row it is). With `holdout`: train and val from the other sources, test = the holdout
    source's test split, and no training row whose prompt is in that test split."""
    if holdout is not None:
        sources = [s for s in sources if s != holdout]
    if not sources:
        raise DataError("no training sources left (the holdout was the only one)")
    parts = {}
    for s in sources:
        part = load_splits(data_dir, s, pair_for(data_dir, s, pair), rcfg, seed, need_train=False)
        if len(part.train["text"]):  # a test-only source (routerdc_*) trains nothing
            parts[s] = part
    if not parts:
        raise DataError(f"no training examples in any of {', '.join(sources)}")
    sources = list(parts)
    test_parts = [tagged(p.test, s) for s, p in parts.items()]
    pairs = {s: f"{p.local},{p.cloud}" for s, p in parts.items()}
    if holdout is not None:
        h = load_splits(
            data_dir, holdout, pair_for(data_dir, holdout, pair), rcfg, seed, need_train=False
        )
        test_parts = [tagged(h.test, holdout)]
        pairs[holdout] = f"{h.local},{h.cloud}"
    seen = {str(t) for t in test_parts[0]["text"]} if holdout is not None else set()

    def unseen(b: dict) -> dict:
        keep = np.array([str(t) not in seen for t in b["text"]], bool)
        return {k: v[keep] for k, v in b.items()}

    train = concat([balanced(unseen(tagged(p.train, s))) for s, p in parts.items()])
    val = concat([unseen(tagged(p.val, s)) for s, p in parts.items()])
    name = holdout or ",".join(sources)
    out = Splits(name, "local", "cloud", ["local", "cloud"], train, val, concat(test_parts))
    out.pairs = pairs  # type: ignore[attr-defined]
    out.train_sources = sources  # type: ignore[attr-defined]
    return out


def splits_for(data_dir: Path, data: str, pair: str | None, rcfg, seed: int, holdout=None):
    """load_splits for one source, load_multi for a list, "all", or a holdout."""
    sources = source_list(data_dir, data)
    if len(sources) == 1 and holdout is None:  # one source: the pair as given ("auto": default)
        given = pair if pair and pair != "auto" else pair_for(data_dir, sources[0], None)
        return load_splits(data_dir, sources[0], given, rcfg, seed)
    return load_multi(data_dir, sources, pair, rcfg, seed, holdout)


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
    if getattr(splits, "pairs", None):  # several sources, each for its pair
        router.info.update(pairs=splits.pairs, train_sources=splits.train_sources)
    tcfg = replace(rcfg.train, storage_path=str(storage) if storage else rcfg.train.storage_path)
    # train.max_train_examples caps what Ray Train fine-tunes on; light routers see all of it
    cap = rcfg.train.max_train_examples if hasattr(router, "build") else None
    train = subsample(splits.train, train_size or cap, seed)
    fit_metrics = fit(router, train, splits.val, config=tcfg, calibration=rcfg.calibration)
    if rcfg.alpha is not None and len(splits.val["text"]) and "q_local" in splits.val:
        choose_alpha(router, splits.val, rcfg.alpha)  # alpha and theta, on val
    return router, fit_metrics


TARGETS = (0.5, 0.8)  # quality targets: fractions of the way from local-only to cloud-only


def score_test_split(router: Router, test: dict, acfg: AlphaConfig | None = None) -> dict:
    """AUC, APGR, CPT, Brier, ECE on test; the decision at the artifact's (alpha, threshold)
    through localroute.core.policy; and with fusion at the router's alpha, the least cloud share
    reaching each quality target (TARGETS) on test."""
    from localroute.core.policy import decide, fused_score
    from localroute.core.sides import CLOUD
    from localroute.core.sweep import at_target, sweep

    acfg = acfg or AlphaConfig()
    p = router.score(test)
    report = router_report(p, test["q_local"], test["q_cloud"])
    t_local, t_cloud = side_times(test, router.info.get("source"), acfg)
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


def train_one(cfg, name: str, source: str, pair: str, data_dir: Path, out: Path) -> dict:
    """`localroute train`: fit one router and write its artifact directory."""
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
    router, fit_metrics = fit_router(name, splits, rcfg, cfg.seed, storage=out / "ray_train")
    metrics = {
        "fit": fit_metrics,
        "calibration": router.info.get("calibration"),
        "alpha": router.info.get("alpha"),
        "test": score_test_split(router, splits.test, rcfg.alpha),
        # (mean, std) of a uniform random router's test AUC over 20 seeds: the band to clear
        "random_band": random_band(splits.test),
    }
    router.save(out, metrics)
    metrics["artifact_id"] = router.artifact_id  # known once saved: metrics.json says it too
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    t = metrics["test"]
    print(
        f"   test: AUC {_r(t['auc'])}, APGR {_r(t['apgr'])}; at the artifact's alpha "
        f"{router.alpha:g}/s and threshold {t['threshold']:.3f} (chosen on val): cloud share "
        f"{t['cloud_share']:.2f}, quality {t['quality']:.3f}"
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
    metrics, curves = {}, {}
    for name in wanted:
        router, fit_metrics = fit_router(name, splits, rcfg, cfg.seed, storage=out / "ray_train")
        metrics[name] = {
            **score_test_split(router, splits.test, rcfg.alpha),
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
            f"| {name} | {_r(m['auc'])} | {_r(m['f1'])} | {_r(m['apgr'])} | "
            f"{_r(m['cpt50'])} | {_r(m['cpt80'])} | {_r(m['aiq'])} | "
            f"{_r(m.get('brier'))} | {_r(m.get('ece'))} | {m.get('alpha', 0):g} | "
            f"{_r(m.get('cloud50_fusion'))} | {_r(m.get('cloud80_fusion'))} |"
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
            lines.append(f"| {name} | " + " | ".join(str(_r(by.get(n))) for n in sizes) + " |")
    return "\n".join(lines) + "\n"
