"""`localroute evaluate`: router scores -> fused decisions -> the numbers a user acts on.

Three experiments on real outcome rows, each a key of ``metrics.json`` and a section of
``report.html``:

* ``seed001_mmlu`` / ``seed001_gsm8k`` (seed 001, Figs. 3-5): per model pair, accuracy against
  mean latency and against cloud share for a learned router + fusion and random + fusion (and the
  oracle bound), and the cloud share / latency each needs to reach the same accuracy target;
* ``seed001_mtbench`` (Fig. 6): RouteLLM's per-turn MT-Bench judge scores replayed turn by turn,
  with and without context awareness (the re-prefill of eq. 1 when the conversation switches);
* ``seed000_savings`` (seed 000's table): energy, compute and dollar savings against cloud-only at
  matched accuracy, and accuracy per joule.

Latency and energy figures come from measured outcome rows where there are any (the local side),
else are calibrated from ML.ENERGY, else come from the config (seed 001's Table I); each carries
its provenance into both outputs.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from localroute.accounting import POINT_KEYS
from localroute.errors import ConfigError

DEFAULT_STAND_INS = {
    "gpt-4-1106-preview": "meta-llama/Llama-3.1-405B-Instruct",
    "mistralai/Mixtral-8x7B-Instruct-v0.1": "Qwen/Qwen3-32B",
}
DEFAULT_CANDIDATES = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen3-14B",
    "Qwen/Qwen3-32B",
    "meta-llama/Llama-3.1-70B-Instruct",
    "meta-llama/Llama-3.1-405B-Instruct",
]
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GPT4 = "gpt-4-1106-preview"


@dataclass(frozen=True)
class PairSpec:
    """One (local, cloud) model pair on one source, and the fusion weight alpha (1/s)."""

    name: str
    source: str
    local: str
    cloud: str
    alpha: float = 0.0

    def check(self, where: str) -> None:
        if not math.isfinite(self.alpha) or self.alpha < 0:
            raise ConfigError(f"{where}.alpha must be a finite number >= 0, got {self.alpha}")


def _pairs_mmlu() -> list[PairSpec]:
    return [
        PairSpec("mixtral-vs-gpt4", "routellm_mmlu", MIXTRAL, GPT4, 0.03),
        PairSpec("llama3-8b-vs-gpt4", "routerdc_mmlu", "meta-llama/Meta-Llama-3-8B", GPT4, 0.03),
    ]


def _pairs_gsm8k() -> list[PairSpec]:
    return [
        PairSpec("mixtral-vs-gpt4", "routellm_gsm8k", MIXTRAL, GPT4, 0.05),
        PairSpec("llama3-8b-vs-gpt4", "routerdc_gsm8k", "meta-llama/Meta-Llama-3-8B", GPT4, 0.05),
    ]


def _pairs_savings() -> list[PairSpec]:
    return [
        PairSpec(
            "llama3.1-8b-vs-nemotron-51b",
            "llmrouter",
            "llama-3.1-8b-instruct",
            "llama-3.1-nemotron-51b-instruct",
        )
    ]


@dataclass(frozen=True)
class DemoScale:
    """Caps `localroute demo` applies so its evaluate stage stays around a minute on 2 cores
    (`localroute evaluate` runs uncapped unless max_*_rows are set)."""

    max_train_rows: int | None = 2000
    max_test_rows: int | None = 2000
    # Light routers only: the embedding routers embed every query (~550 sentences/s on 2 cores).
    learned: list[str] = field(default_factory=lambda: ["task-prior"])


@dataclass(frozen=True)
class EvaluateConfig:
    """The `evaluate:` section of a config file."""

    links_file: str = "configs/links.yaml"
    prices_file: str = "configs/prices.yaml"
    link: str = "5g"  # a profile of links_file
    # Config fallback for per-token times (seed 001's Table I); null: no fallback.
    table1_preset: str | None = "paper-table1"
    # ML.ENERGY data (null: <shared data>/mlenergy when present); "none" disables calibration.
    mlenergy_dir: str | None = None
    # Measured outcome rows (OUTCOME_SCHEMA Parquet) of a local model; null: none.
    measured: str | None = None
    # Routers to compare; "learned" is the first of `learned` that is registered.
    routers: list[str] = field(default_factory=lambda: ["learned", "random", "oracle"])
    learned: list[str] = field(default_factory=lambda: ["mlp", "task-prior"])
    # mlenergy stand-ins (model -> leaderboard id); others: same name, else nearest size.
    stand_ins: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_STAND_INS))
    calibration_candidates: list[str] = field(default_factory=lambda: list(DEFAULT_CANDIDATES))
    # ML.ENERGY configuration: GPU model, and the vLLM max_num_seqs nearest to these (8, the
    # smallest published, is one user's view of a local server; the cloud serves many users).
    mlenergy_gpu: str = "B200"
    # Where a side's mean response length comes from, first that has one: "published" (word
    # counts of the model's published answers to this workload), "calibrated" (the ML.ENERGY
    # stand-in's mean output length on chat traffic), "config" (table1_preset's workloads).
    response_lengths: list[str] = field(
        default_factory=lambda: ["published", "calibrated", "config"]
    )
    local_max_num_seqs: int = 8
    cloud_max_num_seqs: int = 128
    # Models whose published MT-Bench answers stand in for a model's answer lengths.
    # "*": the per-turn mean over every model with a published answer.
    answer_stand_ins: dict[str, str] = field(default_factory=lambda: {GPT4: "gpt-4", MIXTRAL: "*"})
    mmlu: list[PairSpec] = field(default_factory=_pairs_mmlu)
    gsm8k: list[PairSpec] = field(default_factory=_pairs_gsm8k)
    mtbench: PairSpec = field(
        default_factory=lambda: PairSpec("mixtral-vs-gpt4", "routellm_mtbench", MIXTRAL, GPT4, 0.05)
    )
    mtbench_train_sources: list[str] = field(
        default_factory=lambda: ["routellm_gsm8k", "routellm_mmlu"]
    )
    # seed 000's table: every single-turn pair above plus these.
    savings_pairs: list[PairSpec] = field(default_factory=_pairs_savings)
    # Accuracy targets as a fraction of the way from local-only to cloud-only accuracy.
    targets: list[float] = field(default_factory=lambda: [0.5, 0.8])
    accuracy_tolerance: float = 0.01  # matched accuracy: >= cloud-only minus this
    max_train_rows: int | None = None
    max_test_rows: int | None = None
    mtbench_thresholds: int = 101
    plot_points: int = 200
    demo: DemoScale = field(default_factory=DemoScale)

    def check(self, where: str) -> None:
        for name in (
            "local_max_num_seqs",
            "cloud_max_num_seqs",
            "mtbench_thresholds",
            "plot_points",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_train_rows", "max_test_rows"):
            v = getattr(self, name)
            if v is not None and v < 10:
                raise ConfigError(f"{where}.{name} must be >= 10 or null, got {v}")
        for i, t in enumerate(self.targets):
            if not 0.0 <= t <= 1.0:
                raise ConfigError(f"{where}.targets[{i}] must be in [0, 1], got {t}")
        if not 0.0 <= self.accuracy_tolerance < 1.0:
            raise ConfigError(
                f"{where}.accuracy_tolerance must be in [0, 1), got {self.accuracy_tolerance}"
            )
        from localroute.cost import (
            CostConfigError,
            get_link,
            get_preset,
            load_latency_presets,
            load_link_profiles,
        )

        links_file = _repo_path(self.links_file)
        try:
            get_link(self.link, load_link_profiles(links_file))
        except CostConfigError as exc:
            raise ConfigError(f"{where}.link: {exc}") from None
        if self.table1_preset is not None:
            try:
                get_preset(self.table1_preset, load_latency_presets(links_file))
            except CostConfigError as exc:
                raise ConfigError(f"{where}.table1_preset: {exc}") from None
        for i, r in enumerate(self.response_lengths):
            if r not in ("published", "calibrated", "config"):
                raise ConfigError(
                    f"{where}.response_lengths[{i}] must be published, calibrated or config, "
                    f"got {r!r}"
                )
        if not self.routers:
            raise ConfigError(f"{where}.routers must name at least one router")
        for i, r in enumerate(self.routers):
            if r == "learned":
                continue
            from localroute.routers import get_router_class
            from localroute.routers.base import RouterError

            try:
                get_router_class(r)
            except RouterError as exc:
                raise ConfigError(f"{where}.routers[{i}]: {exc}") from None


# --------------------------------------------------------------------------- context


@dataclass
class _Ctx:
    cfg: Any  # EvaluateConfig
    seed: int
    data_dir: Path
    available: set[str]
    latency: Any  # LatencyModel builder inputs
    link: Any
    table1: Any
    mlenergy: Any
    measured: Any
    prices: Any
    catalogue: dict[str, dict[str, Any]]
    log: Any
    notes: list[str] = field(default_factory=list)
    routers_used: dict[str, str] = field(default_factory=dict)
    router_params: dict[str, dict] = field(default_factory=dict)  # the config's routers.params


def _repo_path(p: str) -> Path:
    path = Path(p)
    if path.is_absolute() or path.exists():
        return path
    return Path(__file__).resolve().parents[1] / p


def _catalogue(data_dir: Path, sources: list[str]) -> dict[str, dict[str, Any]]:
    from localroute.data.build import read_table

    t = read_table(data_dir, "models", sources)
    out: dict[str, dict[str, Any]] = {}
    for row in t.to_pylist():
        cur = out.setdefault(row["model"], {})
        for k in ("size_b", "input_usd_per_m", "output_usd_per_m"):
            if cur.get(k) is None and row.get(k) is not None:
                cur[k] = row[k]
    return out


def _resolve_learned(cfg: EvaluateConfig) -> str:
    from localroute.routers import get_router_class
    from localroute.routers.base import RouterError

    for name in cfg.learned:
        try:
            get_router_class(name)
            return name
        except (RouterError, ImportError):
            continue
    return "task-prior"


def _make_ctx(cfg, seed: int, data_dir: Path, measured_dir: Path | None, log) -> _Ctx:
    from localroute.accounting import load_measured, load_prices
    from localroute.calibration_mlenergy import load_mlenergy
    from localroute.cost import get_link, get_preset, load_latency_presets, load_link_profiles
    from localroute.data.paths import find_shared_data

    ev: EvaluateConfig = cfg
    links_file = _repo_path(ev.links_file)
    link = get_link(ev.link, load_link_profiles(links_file))  # unknown name: error lists known
    table1 = None
    if ev.table1_preset is not None:
        table1 = get_preset(ev.table1_preset, load_latency_presets(links_file))
    mlenergy = None
    if ev.mlenergy_dir != "none":
        root = Path(ev.mlenergy_dir) if ev.mlenergy_dir else None
        if root is None:
            shared = find_shared_data(None)
            root = shared / "mlenergy" if shared is not None else None
        if root is not None and (root / "models").is_dir():
            mlenergy = load_mlenergy(str(root))
        elif ev.mlenergy_dir:
            raise ConfigError(f"evaluate.mlenergy_dir: {root} has no ML.ENERGY models/ folder")
    measured = None
    mpath = (
        measured_dir if measured_dir is not None else (Path(ev.measured) if ev.measured else None)
    )
    if mpath is not None:
        measured = load_measured(mpath)
        if measured is None:
            log(
                f"   note: no measured rows with per-token times under {mpath}; "
                "using calibrated figures"
            )
    prices = load_prices(_repo_path(ev.prices_file))
    available = {p.stem for p in (data_dir / "outcomes").glob("*.parquet")}
    catalogue = _catalogue(data_dir, sorted(available))
    return _Ctx(
        cfg=ev,
        seed=seed,
        data_dir=data_dir,
        available=available,
        latency=None,
        link=link,
        table1=table1,
        mlenergy=mlenergy,
        measured=measured,
        prices=prices,
        catalogue=catalogue,
        log=log,
    )


# --------------------------------------------------------------------------- one pair


@dataclass
class _PairData:
    spec: PairSpec
    n_test: int
    n_contaminated_dropped: int
    sides: dict[str, Any]  # role -> SideSpec
    local: Any  # SideOutcome
    cloud: Any
    gap: np.ndarray
    scores: dict[str, np.ndarray]  # router label -> p
    router_names: dict[str, str]
    aucs: dict[str, float | None]


MIN_TRAIN_ROWS = 50


def _hash_half(query_ids: list[str], seed: int) -> np.ndarray:
    """A stable half of the queries (by a hash of id and seed), True = used for fitting."""
    import hashlib

    return np.array(
        [
            hashlib.blake2b(f"{seed}:{q}".encode(), digest_size=8).digest()[0] < 128
            for q in query_ids
        ],
        dtype=bool,
    )


def _subsample(t: pa.Table, n: int | None, seed: int) -> pa.Table:
    if n is None or t.num_rows <= n:
        return t
    idx = np.sort(np.random.default_rng(seed).choice(t.num_rows, n, replace=False))
    return t.take(pa.array(idx))


def _answer_words(
    ctx: _Ctx,
    source: str,
    query_ids: list[str],
    turns: np.ndarray,
    model: str,
    answers_source: str | None = None,
    answers_model: str | None = None,
):
    """Per-row word counts of a model's published answers (NaN where absent), or None."""
    from localroute.data.build import read_table

    src = answers_source or source
    if src not in ctx.available:
        return None
    t = read_table(ctx.data_dir, "outcomes", [src]).select(["query_id", "turn", "model", "answer"])
    mdl = answers_model or model
    rows = [
        r for r in t.to_pylist() if (mdl == "*" or r["model"] == mdl) and r["answer"] is not None
    ]
    if not rows:
        return None
    sums: dict[tuple[str, int], list[int]] = {}
    for r in rows:  # "*": the mean over every model that published an answer to the turn
        sums.setdefault((r["query_id"].split(":", 1)[-1], int(r["turn"])), []).append(
            len(r["answer"].split())
        )
    key = {k: float(np.mean(v)) for k, v in sums.items()}
    out = np.array(
        [
            key.get((q.split(":", 1)[-1], int(tn)), np.nan)
            for q, tn in zip(query_ids, turns, strict=True)
        ],
        dtype=float,
    )
    return None if np.all(np.isnan(out)) else out


def _sides(ctx: _Ctx, spec: PairSpec, lengths: dict[str, Any]) -> dict[str, Any]:
    import dataclasses

    from localroute.accounting import Figure, resolve_side

    ev = ctx.cfg
    out = {}
    for role, model in (("local", spec.local), ("cloud", spec.cloud)):
        side = resolve_side(
            role,
            model,
            measured=ctx.measured,
            mlenergy=ctx.mlenergy,
            stand_ins=ev.stand_ins,
            candidates=ev.calibration_candidates,
            max_num_seqs=ev.local_max_num_seqs if role == "local" else ev.cloud_max_num_seqs,
            gpu=ev.mlenergy_gpu,
            table1=ctx.table1,
            catalogue=ctx.catalogue,
            prices=ctx.prices,
        )
        # Mean response length: the first source in evaluate.response_lengths that has one.
        options: dict[str, Figure | None] = {"published": None, "calibrated": None, "config": None}
        arr, label = lengths.get(role, (None, ""))
        if arr is not None and np.isfinite(arr).any():
            options["published"] = Figure(float(np.nanmean(arr)), "published", label)
        if side.mean_response_tokens.provenance == "calibrated":
            options["calibrated"] = side.mean_response_tokens
        wl = ctx.table1.workloads.get(_workload_of(spec.source)) if ctx.table1 else None
        if wl is not None:
            v = wl.local_response_tokens if role == "local" else wl.cloud_response_tokens
            options["config"] = Figure(
                v,
                "published",
                f"config preset {ctx.table1.name} ({_workload_of(spec.source)}, measured there "
                f"on the seed's own models): {ctx.table1.workloads_source}",
            )
        chosen = next((options[k] for k in ev.response_lengths if options.get(k)), None)
        side = dataclasses.replace(
            side, mean_response_tokens=chosen or Figure(None, "absent", "no source")
        )
        side.latency()  # a side with no latency source is an error naming the model
        if chosen is None:
            raise ConfigError(
                f"evaluate.response_lengths: no response length for the {role} model "
                f"{model!r} on {spec.source} from any of {ev.response_lengths}"
            )
        out[role] = side
    return out


def _workload_of(source: str) -> str:
    return "mmlu" if "mmlu" in source else "gsm8k" if "gsm8k" in source else "mt-bench-101"


def _latency_model(ctx: _Ctx, sides: dict[str, Any]):
    from localroute.cost import LatencyModel

    return LatencyModel(
        local=sides["local"].latency(), cloud=sides["cloud"].latency(), link=ctx.link
    )


def _train_router(ctx: _Ctx, label: str, train: pa.Table, val: pa.Table | None):
    from localroute.routers import make_router
    from localroute.routers.examples import to_batch

    name = ctx.routers_used.setdefault(
        label, _resolve_learned(ctx.cfg) if label == "learned" else label
    )
    router = make_router(name, seed=ctx.seed, **ctx.router_params.get(name, {}))
    if router.trainable:
        t0 = time.perf_counter()
        router.fit(to_batch(train), to_batch(val) if val is not None and val.num_rows else None)
        ctx.log(f"      fitted {name} on {train.num_rows} rows in {time.perf_counter() - t0:.1f} s")
    return name, router


def _pair(ctx: _Ctx, spec: PairSpec) -> _PairData | None:
    from localroute.accounting import side_outcome
    from localroute.metrics import roc_auc
    from localroute.routers.examples import pair_examples, split_of, to_batch

    if spec.source not in ctx.available:
        msg = (
            f"{spec.source} is not in the data build "
            "(RouterDC is evaluation-only and needs ../shared/data)"
        )
        ctx.notes.append(f"skipped {spec.name} on {spec.source}: {msg}")
        ctx.log(f"   skip {spec.source}/{spec.name}: {msg}")
        return None
    ev: EvaluateConfig = ctx.cfg
    ex = pair_examples(ctx.data_dir, spec.source, spec.local, spec.cloud)
    train = _subsample(split_of(ex, "train"), ev.max_train_rows, ctx.seed)
    val = _subsample(split_of(ex, "val"), ev.max_train_rows, ctx.seed)
    test_all = split_of(ex, "test")
    test = split_of(ex, "test", drop_contaminated=True)
    dropped = test_all.num_rows - test.num_rows
    if train.num_rows < MIN_TRAIN_ROWS:
        # RouterDC's own train split has no gpt-4 outcome: carve a seeded, question-level half of
        # the test split for fitting and evaluate on the other half, and say so.
        fit_mask = _hash_half(test["query_id"].to_pylist(), ctx.seed)
        note = (
            f"{spec.source}/{spec.name}: the train split has {train.num_rows} rows with both "
            f"models, so routers were fitted on a seeded half of the test split "
            f"({int(fit_mask.sum())} rows) and evaluated on the other half"
        )
        ctx.notes.append(note)
        ctx.log(f"   note: {note}")
        train = _subsample(test.filter(pa.array(fit_mask)), ev.max_train_rows, ctx.seed)
        val = None
        test = test.filter(pa.array(~fit_mask))
    test = _subsample(test, ev.max_test_rows, ctx.seed)
    qids = test["query_id"].to_pylist()
    turns = test["turn"].to_numpy()
    lengths = {}
    for role, model in (("local", spec.local), ("cloud", spec.cloud)):
        arr = _answer_words(ctx, spec.source, qids, turns, model)
        if arr is not None:
            lengths[role] = (
                arr,
                f"mean word count of {model}'s published answers in {spec.source}",
            )
    sides = _sides(ctx, spec, lengths)
    lm = _latency_model(ctx, sides)
    lp = test["prompt_words"].to_numpy().astype(float)
    ct = test["context_words"].to_numpy().astype(float)
    lr = {}
    for role in ("local", "cloud"):
        mean = sides[role].mean_response_tokens.f
        arr = lengths.get(role, (None, ""))[0]
        lr[role] = (
            np.where(np.isfinite(arr), arr, mean) if arr is not None else np.full(lp.shape, mean)
        )
    t_s = lm.t_local(lp, ct, response_tokens=lr["local"])
    t_e = lm.t_cloud(lp, ct, response_tokens=lr["cloud"])
    q_l = test["q_local"].to_numpy().astype(float)
    q_c = test["q_cloud"].to_numpy().astype(float)
    local = side_outcome(sides["local"], q_l, t_s, lp + ct, lr["local"])
    cloud = side_outcome(sides["cloud"], q_c, t_e, lp + ct, lr["cloud"])
    batch = to_batch(test)
    scores, names, aucs = {}, {}, {}
    labels = batch["label"].astype(int)
    for label in ev.routers:
        name, router = _train_router(ctx, label, train, val)
        p = np.asarray(router.score(batch), dtype=float)
        scores[label], names[label] = p, name
        aucs[label] = _finite(roc_auc(labels, p)) if 0 < labels.sum() < labels.size else None
    ctx.log(
        f"   {spec.source}/{spec.name}: {test.num_rows} test rows "
        f"({dropped} contaminated dropped), "
        f"routers {', '.join(f'{k}={v}' for k, v in names.items())}"
    )
    return _PairData(
        spec, test.num_rows, dropped, sides, local, cloud, t_e - t_s, scores, names, aucs
    )


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _clean(obj: Any) -> Any:
    """NaN/inf to None, numpy to Python, recursively (JSON: absent is null, never 0)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def _quantities(d: _PairData) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from localroute.accounting import QUANTITIES

    return {q: (d.local.get(q), d.cloud.get(q)) for q in QUANTITIES}


def _baselines(d: _PairData) -> dict[str, dict[str, float]]:
    from localroute.accounting import accuracy_per_joule, totals

    n = d.n_test
    out = {
        "local_only": totals(np.ones(n, np.int8), d.local, d.cloud),
        "cloud_only": totals(np.zeros(n, np.int8), d.local, d.cloud),
    }
    for v in out.values():
        v["accuracy_per_joule"] = accuracy_per_joule(v["quality"], v["energy_j"])
    return out


# --------------------------------------------------------------------------- seed 001, single turn


def _single_turn(ctx: _Ctx, d: _PairData) -> dict[str, Any]:
    from localroute.replay import at_target, sweep

    ev: EvaluateConfig = ctx.cfg
    base = _baselines(d)
    q_lo, q_co = base["local_only"]["quality"], base["cloud_only"]["quality"]
    targets = [{"fraction": f, "quality": q_lo + f * (q_co - q_lo)} for f in ev.targets]
    alphas = sorted({0.0, d.spec.alpha})
    routers = {}
    q = _quantities(d)
    for label, p in d.scores.items():
        curves = sweep(p, d.gap, q, alphas)
        entry: dict[str, Any] = {
            "router": d.router_names[label],
            "auc": d.aucs[label],
            "curves": {f"{c.alpha:g}": c.to_dict(ev.plot_points) for c in curves},
            "at_target": [],
        }
        fused = curves[-1]  # the pair's alpha (seed 001's Table I value)
        for t in targets:
            entry["at_target"].append(
                {
                    "fraction": t["fraction"],
                    "quality_target": t["quality"],
                    "alpha": fused.alpha,
                    "min_cloud_share": at_target(fused, "quality", t["quality"], "cloud_share"),
                    "min_latency": at_target(fused, "quality", t["quality"], "latency_s"),
                }
            )
        routers[label] = entry
    return {
        "source": d.spec.source,
        "local": d.spec.local,
        "cloud": d.spec.cloud,
        "alpha": d.spec.alpha,
        "n_test": d.n_test,
        "n_contaminated_dropped": d.n_contaminated_dropped,
        "sides": {k: v.to_dict() for k, v in d.sides.items()},
        "baselines": base,
        "targets": targets,
        "routers": routers,
    }


# --------------------------------------------------------------------------- seed 001, MT-Bench


def _mtbench(ctx: _Ctx) -> dict[str, Any]:
    from localroute.cost import LOCAL, conversation_context, fusion_policy, replay_conversations
    from localroute.metrics import roc_auc
    from localroute.routers.examples import pair_examples, split_of, to_batch

    ev: EvaluateConfig = ctx.cfg
    spec = ev.mtbench
    if spec.source not in ctx.available:
        note = f"{spec.source} is not in the data build"
        ctx.notes.append(f"skipped MT-Bench: {note}")
        return {"skipped": note}
    ex = pair_examples(ctx.data_dir, spec.source, spec.local, spec.cloud)
    n_all = ex.num_rows
    keep = np.asarray(ex["contaminated"].to_numpy(zero_copy_only=False), dtype=bool)
    ex = ex.filter(pa.array(~keep))
    qids = ex["query_id"].to_pylist()
    turns = ex["turn"].to_numpy().astype(int)
    lengths = {}
    for role, model in (("local", spec.local), ("cloud", spec.cloud)):
        stand = ev.answer_stand_ins.get(model)
        arr = _answer_words(ctx, spec.source, qids, turns, model, "mtbench", stand or model)
        if arr is not None:
            lengths[role] = (
                arr,
                (
                    "mean word count of every model's published MT-Bench answers (FastChat), "
                    "per turn"
                    if stand == "*"
                    else f"mean word count of {stand or model}'s published MT-Bench answers "
                    "(FastChat)"
                )
                + (f", standing in for {model}" if stand else ""),
            )
    sides = _sides(ctx, spec, lengths)
    lm = _latency_model(ctx, sides)
    # The history each later turn carries: the recorded answers of the cloud stand-in where
    # published, else the mean response length of the side that has one.
    hist = lengths.get("cloud", lengths.get("local", (None, "")))[0]
    if hist is None:
        hist = np.full(turns.shape, sides["cloud"].mean_response_tokens.f)
    hist = np.where(np.isfinite(hist), hist, np.nanmean(hist))
    lp = ex["prompt_words"].to_numpy().astype(float)
    conv = np.array(qids, dtype=object)
    ct = conversation_context(conv, turns, lp, hist)
    q_l = ex["q_local"].to_numpy().astype(float)
    q_c = ex["q_cloud"].to_numpy().astype(float)
    labels = ex["label"].to_numpy().astype(int)

    # Routers: trained on other sources with the same pair (MT-Bench itself is all evaluation).
    train_parts, val_parts = [], []
    for src in ev.mtbench_train_sources:
        if src in ctx.available:
            tex = pair_examples(ctx.data_dir, src, spec.local, spec.cloud)
            train_parts.append(split_of(tex, "train"))
            val_parts.append(split_of(tex, "val"))
    train = (
        _subsample(pa.concat_tables(train_parts), ev.max_train_rows, ctx.seed)
        if train_parts
        else None
    )
    val = (
        _subsample(pa.concat_tables(val_parts), ev.max_train_rows, ctx.seed) if val_parts else None
    )
    batch = to_batch(ex)
    routers: dict[str, Any] = {}
    base_local = base_cloud = None
    for label in ev.routers:
        name = ctx.routers_used.get(label) or (
            _resolve_learned(ev) if label == "learned" else label
        )
        from localroute.routers import make_router

        router = make_router(name, seed=ctx.seed, **ctx.router_params.get(name, {}))
        if router.trainable:
            if train is None:
                ctx.notes.append(f"MT-Bench: no training source for {name}; skipped")
                continue
            router.fit(to_batch(train), to_batch(val) if val is not None else None)
        p = np.asarray(router.score(batch), dtype=float)
        # thresholds spanning the fused scores of both modes
        # every fused score a turn can have: staying, or switching towards either side
        f_all = np.concatenate(
            [
                p - spec.alpha * (lm.t_cloud(lp, ct, sw_c) - lm.t_local(lp, ct, sw_l))
                for sw_l, sw_c in ((False, False), (True, False), (False, True))
            ]
        )
        qs = np.quantile(f_all, np.linspace(0, 1, ev.mtbench_thresholds))
        thetas = np.unique(np.r_[-np.inf, qs, np.inf])
        modes = {}
        for aware in (True, False):
            rows = []
            for theta in thetas:
                r = replay_conversations(
                    conv,
                    turns,
                    lp,
                    hist,
                    fusion_policy(p, spec.alpha, float(theta)),
                    lm,
                    context_aware=aware,
                )
                local = r.decision == LOCAL
                qual = np.where(local, q_l, q_c)
                rows.append(
                    {
                        "theta": float(theta),
                        "cloud_share": r.cloud_share,
                        "quality": float(qual.mean()),
                        "score_raw": float((1 + 9 * qual).mean()),
                        "latency_s": r.mean_latency_s,
                        "switches": int(r.switched.sum()),
                        "reprefill_tokens": float(r.reprefill_tokens.sum()),
                    }
                )
            cols = {k: [row[k] for row in rows] for k in rows[0]}
            modes["context_aware" if aware else "context_agnostic"] = cols
            if label == ev.routers[0] and aware:
                base_local, base_cloud = rows[-1], rows[0]  # theta=+inf: all local; -inf: all cloud
        routers[label] = {
            "router": name,
            "auc": _finite(roc_auc(labels, p)) if 0 < labels.sum() < labels.size else None,
            **modes,
        }
    lo = float(np.mean(q_l))
    co = float(np.mean(q_c))
    targets = [{"fraction": f, "quality": lo + f * (co - lo)} for f in ev.targets]
    for entry in routers.values():
        entry["at_target"] = []
        for t in targets:
            for mode in ("context_aware", "context_agnostic"):
                m = entry[mode]
                ok = [i for i, v in enumerate(m["quality"]) if v >= t["quality"] - 1e-12]
                best = (
                    min(ok, key=lambda i: (m["latency_s"][i], m["cloud_share"][i])) if ok else None
                )
                entry["at_target"].append(
                    {
                        "fraction": t["fraction"],
                        "quality_target": t["quality"],
                        "mode": mode,
                        "point": None if best is None else {k: m[k][best] for k in m},
                    }
                )
    ctx.log(
        f"   {spec.source}: {len(set(qids))} conversations, {len(qids)} turns "
        f"({n_all - len(qids)} contaminated turns dropped)"
    )
    return {
        "source": spec.source,
        "local": spec.local,
        "cloud": spec.cloud,
        "alpha": spec.alpha,
        "alpha_provenance": "estimated (seed 001 gives no alpha for MT-Bench-101; configurable)",
        "n_turns": len(qids),
        "n_conversations": len(set(qids)),
        "n_contaminated_turns_dropped": n_all - len(qids),
        "train_sources": [s for s in ev.mtbench_train_sources if s in ctx.available],
        "history": "turn-1 context = the user prompt + the published answer length of "
        + (lengths.get("cloud", lengths.get("local", (None, "the cloud side's mean response")))[1]),
        "sides": {k: v.to_dict() for k, v in sides.items()},
        "baselines": {"local_only": base_local, "cloud_only": base_cloud},
        "targets": targets,
        "routers": routers,
    }


# --------------------------------------------------------------------------- seed 000


def _savings(ctx: _Ctx, pairs: list[_PairData]) -> dict[str, Any]:
    from localroute.accounting import accuracy_per_joule, savings
    from localroute.replay import at_target, sweep_alpha

    ev: EvaluateConfig = ctx.cfg
    rows = []
    for d in pairs:
        base = _baselines(d)
        cloud, local = base["cloud_only"], base["local_only"]
        target = cloud["quality"] - ev.accuracy_tolerance
        q = _quantities(d)
        policies = {"cloud-only": cloud, "local-only": local}
        for label, p in d.scores.items():
            curve = sweep_alpha(p, d.gap, q, 0.0)  # seed 000 routes on quality alone
            pt = at_target(curve, "quality", target, "energy_j")
            policies[f"{label} ({d.router_names[label]})"] = pt
        for pol, pt in policies.items():
            row = {
                "pair": d.spec.name,
                "source": d.spec.source,
                "local": d.spec.local,
                "cloud": d.spec.cloud,
                "policy": pol,
                "n_test": d.n_test,
                "target_quality": target,
                "reached": pt is not None,
            }
            if pt is not None:
                row.update({k: pt.get(k) for k in POINT_KEYS})
                row["local_share"] = 1.0 - pt["cloud_share"]
                row["savings_vs_cloud_only"] = savings(pt, cloud)
                row["savings_vs_local_only"] = savings(pt, local)
                row["accuracy_per_joule"] = accuracy_per_joule(pt["quality"], pt["energy_j"])
            rows.append(row)
    return {
        "matched_accuracy": "the least-energy threshold whose accuracy is >= cloud-only "
        f"accuracy - {ev.accuracy_tolerance:g}",
        "alpha": 0.0,
        "rows": rows,
        "sides": {d.spec.name: {k: v.to_dict() for k, v in d.sides.items()} for d in pairs},
    }


# --------------------------------------------------------------------------- entry points


def run_evaluate(
    cfg,
    data_dir: str | Path,
    out_dir: str | Path,
    measured_dir: str | Path | None = None,
    log=print,
    evaluate: EvaluateConfig | None = None,
) -> dict[str, Any]:
    """Run the three experiments on a data build; write metrics.json and report.html.

    ``cfg`` is a loaded :class:`localroute.config.Config`; ``evaluate`` overrides its section.
    """
    from localroute.report import write_report

    t0 = time.perf_counter()
    ev: EvaluateConfig = evaluate if evaluate is not None else cfg.evaluate
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not (data_dir / "outcomes").is_dir():
        raise ConfigError(
            f"{data_dir}: not a data build (no outcomes/); run `localroute data build`"
        )
    ctx = _make_ctx(ev, cfg.seed, data_dir, Path(measured_dir) if measured_dir else None, log)
    ctx.router_params = dict(cfg.routers.params)
    metrics: dict[str, Any] = {
        "link": {
            "name": ctx.link.name,
            "bandwidth_tokens_s": ctx.link.bandwidth_tokens_s,
            "uplink_tokens_s": ctx.link.upload_tokens_s,
            "overhead_s": ctx.link.overhead_s,
            "provenance": ctx.link.provenance,
            "source": ctx.link.source,
        },
        "measured": None
        if ctx.measured is None
        else {
            "model": ctx.measured.model,
            "hardware": ctx.measured.hardware,
            "rows": ctx.measured.n_rows,
            "path": ctx.measured.path,
        },
        "mlenergy": None if ctx.mlenergy is None else str(ctx.mlenergy.root),
    }
    all_pairs: list[_PairData] = []
    for key, specs in (("seed001_mmlu", ev.mmlu), ("seed001_gsm8k", ev.gsm8k)):
        log(f"== evaluate {key}: {len(specs)} pair(s)")
        out = {}
        for i, spec in enumerate(specs, 1):
            log(f"   [{i}/{len(specs)}] {spec.source}: {spec.local} vs {spec.cloud}")
            d = _pair(ctx, spec)
            if d is not None:
                out[spec.name] = _single_turn(ctx, d)
                all_pairs.append(d)
        metrics[key] = {
            "pairs": out,
            "skipped": [n for n in ctx.notes if "skipped" in n and key[8:] in n],
        }
    log("== evaluate seed001_mtbench: context-aware vs context-agnostic replay")
    metrics["seed001_mtbench"] = _mtbench(ctx)
    log("== evaluate seed000_savings: savings against cloud-only at matched accuracy")
    extra = []
    for spec in ev.savings_pairs:
        d = _pair(ctx, spec)
        if d is not None:
            extra.append(d)
    metrics["seed000_savings"] = _savings(ctx, all_pairs + extra)
    metrics["routers"] = dict(ctx.routers_used)
    metrics["notes"] = ctx.notes
    metrics["elapsed_s"] = time.perf_counter() - t0
    metrics = _clean(metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    write_report(metrics, out_dir / "report.html")
    log(f"   evaluate took {metrics['elapsed_s']:.1f} s")
    return metrics


def demo_stage(cfg, out_dir: Path, measured_dir: Path | None) -> dict[str, Any]:
    """The demo's evaluate stage: data already built at out_dir/'data' (Ray already started)."""
    import dataclasses

    out_dir = Path(out_dir)
    eval_dir = out_dir / "evaluate"
    ev: EvaluateConfig = cfg.evaluate
    scaled = dataclasses.replace(
        ev,
        max_train_rows=ev.max_train_rows or ev.demo.max_train_rows,
        max_test_rows=ev.max_test_rows or ev.demo.max_test_rows,
        learned=list(ev.demo.learned),
    )
    print(
        f"== evaluate (demo scale: <= {scaled.max_train_rows} train, <= {scaled.max_test_rows} "
        f"test rows per pair, learned router from {scaled.learned}; `localroute evaluate` runs "
        "on every row with the configured routers)"
    )
    if measured_dir is not None and not Path(measured_dir).exists():
        print(f"   note: no measured rows at {measured_dir}; local figures are calibrated")
        measured_dir = None
    metrics = run_evaluate(cfg, out_dir / "data", eval_dir, measured_dir, evaluate=scaled)
    print(f"   {eval_dir / 'report.html'}  (self-contained report)")
    print(f"   {eval_dir / 'metrics.json'}")
    return {
        "report": str(eval_dir / "report.html"),
        "metrics": str(eval_dir / "metrics.json"),
        "elapsed_s": metrics.get("elapsed_s"),
    }
