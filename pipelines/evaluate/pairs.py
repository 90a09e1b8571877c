"""The typed pair table: one (local, cloud) pair's evaluated rows, priced and scored, built once.

A :class:`PairTable` holds everything the experiments read about one pair: the evaluated rows
(prompt/context lengths, both sides' quality, the label), both sides' figures with provenance,
the per-query outcome of each side (quality, latency, energy, FLOPs, dollars), the latency gap
T_e - T_s, and every router's score. :class:`PairTables` builds each table once per run (the
outcome Parquet of a source is read once for the examples and once for the answer lengths) and
hands the same table to every experiment that asks for it; a source's examples for a pair and its
published answers are each read once a run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from pipelines.evaluate.config import PairSpec
from pipelines.evaluate.context import EvalContext
from pipelines.evaluate.scoring import RouterScore, score_routers
from pipelines.evaluate.sides import Lengths, latency_model, resolve_sides

if TYPE_CHECKING:
    from localroute.core.accounting import SideOutcome, SideSpec
    from localroute.core.latency import LatencyModel
    from localroute.core.policy import RouteResult

MIN_TRAIN_ROWS = 50
Batch = dict[str, np.ndarray]


@dataclass(frozen=True)
class PairTable:
    """One pair's evaluated rows (``batch``, what the routers score) with everything derived."""

    spec: PairSpec
    batch: Batch  # columns of routers.examples.pair_examples, one entry per evaluated row
    n_contaminated_dropped: int
    lengths: dict[str, Lengths]  # role -> published answer lengths per row (where any)
    sides: dict[str, SideSpec]  # role -> figures with provenance
    latency: LatencyModel
    scores: dict[str, RouterScore]  # router label (learned, random, ...) -> scores
    local: SideOutcome | None = None  # single-turn: per-query outcome if all went local
    cloud: SideOutcome | None = None
    gap: np.ndarray | None = None  # single-turn: T_e - T_s per query (s)
    fit_note: str | None = None

    @property
    def n(self) -> int:
        return int(self.batch["label"].size)

    def col(self, name: str, dtype: Any = float) -> np.ndarray:
        return np.asarray(self.batch[name]).astype(dtype)

    def decisions(
        self, label: str, alpha: float, theta: float, latency: LatencyModel | None = None
    ) -> RouteResult:
        """Router ``label``'s decision for every row at (alpha, theta): the one policy
        (:func:`localroute.core.policy.route`) over this table's scores and word counts, with
        the pair's latency model unless another is given (e.g. a server's prior)."""
        from localroute.core.policy import route

        return route(
            latency or self.latency,
            self.scores[label].p,
            alpha,
            theta,
            self.col("prompt_words"),
            self.col("context_words"),
        )

    def quantities(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(value if local, value if cloud) per query, for every accounted quantity."""
        from localroute.core.accounting import QUANTITIES

        if self.local is None or self.cloud is None:
            raise ValueError(f"{self.spec.name}: a multi-turn table has no per-query outcomes")
        return {q: (self.local.get(q), self.cloud.get(q)) for q in QUANTITIES}


# --------------------------------------------------------------------------- rows


def hash_half(query_ids: list[str], seed: int) -> np.ndarray:
    """A stable half of the queries (by a hash of id and seed), True = used for fitting."""
    return np.array(
        [
            hashlib.blake2b(f"{seed}:{q}".encode(), digest_size=8).digest()[0] < 128
            for q in query_ids
        ],
        dtype=bool,
    )


def subsample(t: pa.Table, n: int | None, seed: int) -> pa.Table:
    if n is None or t.num_rows <= n:
        return t
    idx = np.sort(np.random.default_rng(seed).choice(t.num_rows, n, replace=False))
    return t.take(pa.array(idx))


def _to_batch(t: pa.Table | None) -> Batch | None:
    from localroute.routers.examples import to_batch

    return to_batch(t) if t is not None and t.num_rows else None


Examples = Callable[[str, str, str], pa.Table]  # (source, local, cloud) -> labelled examples


@dataclass
class _Rows:
    test: pa.Table
    fit: pa.Table | None
    fit_val: pa.Table | None
    dropped: int
    note: str | None = None


def _single_turn_rows(ctx: EvalContext, spec: PairSpec, examples: Examples) -> _Rows:
    from localroute.routers.examples import split_of

    ev = ctx.cfg
    ex = examples(spec.source, spec.local, spec.cloud)
    train = subsample(split_of(ex, "train"), ev.max_train_rows, ctx.seed)
    val = subsample(split_of(ex, "val"), ev.max_train_rows, ctx.seed)
    test_all = split_of(ex, "test")
    test = split_of(ex, "test", drop_contaminated=True)
    rows = _Rows(test, train, val, test_all.num_rows - test.num_rows)
    if train.num_rows < MIN_TRAIN_ROWS:
        # RouterDC's own train split has no gpt-4 outcome: carve a seeded, question-level half of
        # the test split for fitting the baselines, evaluate on the other half, and say so.
        fit_mask = hash_half(test["query_id"].to_pylist(), ctx.seed)
        rows.note = (
            f"{spec.source}/{spec.name}: the train split has {train.num_rows} rows with both "
            f"models, so baselines were fitted on a seeded half of the test split "
            f"({int(fit_mask.sum())} rows) and every router evaluated on the other half"
        )
        ctx.note(rows.note)
        rows.fit = subsample(test.filter(pa.array(fit_mask)), ev.max_train_rows, ctx.seed)
        rows.fit_val = None
        rows.test = test.filter(pa.array(~fit_mask))
    rows.test = subsample(rows.test, ev.max_test_rows, ctx.seed)
    return rows


def _multi_turn_rows(ctx: EvalContext, spec: PairSpec, examples: Examples) -> _Rows:
    """Every uncontaminated turn is evaluated; baselines fit on the same pair's other sources."""
    from localroute.routers.examples import split_of

    ev = ctx.cfg
    ex = examples(spec.source, spec.local, spec.cloud)
    contaminated = np.asarray(ex["contaminated"].to_numpy(zero_copy_only=False), dtype=bool)
    test = ex.filter(pa.array(~contaminated))
    train_parts, val_parts = [], []
    for src in ev.mtbench_train_sources:
        if src in ctx.available:
            tex = examples(src, spec.local, spec.cloud)
            train_parts.append(split_of(tex, "train"))
            val_parts.append(split_of(tex, "val"))
    fit = (
        subsample(pa.concat_tables(train_parts), ev.max_train_rows, ctx.seed)
        if train_parts
        else None
    )
    val = subsample(pa.concat_tables(val_parts), ev.max_train_rows, ctx.seed) if val_parts else None
    return _Rows(test, fit, val, ex.num_rows - test.num_rows)


# --------------------------------------------------------------------------- answer lengths


@dataclass
class _AnswerWords:
    """Word counts of every published answer of one source, keyed by (query suffix, turn)."""

    by_model: dict[str, dict[tuple[str, int], float]] = field(default_factory=dict)

    @classmethod
    def read(cls, ctx: EvalContext, source: str) -> _AnswerWords:
        from localroute.data.build import read_table

        t = read_table(ctx.data_dir, "outcomes", [source]).select(
            ["query_id", "turn", "model", "answer"]
        )
        lists: dict[str, dict[tuple[str, int], list[int]]] = {}
        for q, tn, m, a in zip(*(t[c].to_pylist() for c in t.column_names), strict=True):
            if a is None:
                continue
            key = (q.split(":", 1)[-1], int(tn))
            words = len(a.split())
            lists.setdefault(m, {}).setdefault(key, []).append(words)
            lists.setdefault("*", {}).setdefault(key, []).append(words)  # every model's mean
        return cls({m: {k: float(np.mean(v)) for k, v in d.items()} for m, d in lists.items()})

    def per_row(self, model: str, query_ids: list[str], turns: np.ndarray) -> np.ndarray | None:
        key = self.by_model.get(model)
        if not key:
            return None
        out = np.array(
            [
                key.get((q.split(":", 1)[-1], int(tn)), np.nan)
                for q, tn in zip(query_ids, turns, strict=True)
            ],
            dtype=float,
        )
        return None if np.all(np.isnan(out)) else out


# --------------------------------------------------------------------------- the tables


class PairTables:
    """Builds each pair's table once per run; experiments share it."""

    def __init__(self, ctx: EvalContext) -> None:
        self.ctx = ctx
        self._tables: dict[tuple[str, PairSpec], PairTable | None] = {}
        self._answers: dict[str, _AnswerWords] = {}
        self._examples: dict[tuple[str, str, str], pa.Table] = {}

    def examples(self, source: str, local: str, cloud: str) -> pa.Table:
        """A source's labelled examples for a pair (read from the outcome table once a run)."""
        from localroute.routers.examples import pair_examples

        key = (source, local, cloud)
        if key not in self._examples:
            measured = self.ctx.measured
            extra = self.ctx.measured_rows if measured and local == measured.model else None
            data = self.ctx.data_dir
            self._examples[key] = pair_examples(data, source, local, cloud, extra=extra)
        return self._examples[key]

    def answers(self, source: str) -> _AnswerWords | None:
        if source not in self.ctx.available:
            return None
        if source not in self._answers:
            self._answers[source] = _AnswerWords.read(self.ctx, source)
        return self._answers[source]

    def single_turn(self, spec: PairSpec, experiment: str) -> PairTable | None:
        return self._get("single", spec, experiment)

    def multi_turn(self, spec: PairSpec, experiment: str) -> PairTable | None:
        return self._get("multi", spec, experiment)

    def _get(self, kind: str, spec: PairSpec, experiment: str) -> PairTable | None:
        key = (kind, spec)
        if key not in self._tables:
            self._tables[key] = self._build(kind, spec)
        if self._tables[key] is None:
            self.ctx.skipped.setdefault(experiment, []).append(_missing(spec))
        return self._tables[key]

    def _build(self, kind: str, spec: PairSpec) -> PairTable | None:
        ctx = self.ctx
        if spec.source not in ctx.available:
            ctx.note(_missing(spec))
            return None
        rows = (_single_turn_rows if kind == "single" else _multi_turn_rows)(
            ctx, spec, self.examples
        )
        batch = _to_batch(rows.test)
        assert batch is not None, f"{spec.source}: no evaluated rows"
        qids, turns = list(batch["query_id"]), np.asarray(batch["turn"]).astype(int)
        lengths = self._lengths(kind, spec, qids, turns)
        sides = resolve_sides(ctx, spec, lengths)
        lm = latency_model(ctx, sides)
        scores = score_routers(ctx, spec, batch, _to_batch(rows.fit), _to_batch(rows.fit_val))
        ctx.log(
            f"   {spec.source}/{spec.name}: {len(qids)} rows ({rows.dropped} contaminated "
            f"dropped), routers {', '.join(f'{k}={v.router}' for k, v in scores.items())}"
        )
        table = PairTable(spec, batch, rows.dropped, lengths, sides, lm, scores, fit_note=rows.note)
        return _priced(table) if kind == "single" else table

    def _lengths(
        self, kind: str, spec: PairSpec, qids: list[str], turns: np.ndarray
    ) -> dict[str, Lengths]:
        ev = self.ctx.cfg
        out = {}
        for role, model in (("local", spec.local), ("cloud", spec.cloud)):
            if kind == "single":
                src, stand = spec.source, None
                label = f"mean word count of {model}'s published answers in {spec.source}"
            else:  # the published MT-Bench answers (FastChat), per turn
                src, stand = "mtbench", ev.answer_stand_ins.get(model)
                label = (
                    "mean word count of every model's published MT-Bench answers (FastChat), "
                    "per turn"
                    if stand == "*"
                    else f"mean word count of {stand or model}'s published MT-Bench answers "
                    "(FastChat)"
                ) + (f", standing in for {model}" if stand else "")
            answers = self.answers(src)
            arr = answers.per_row(stand or model, qids, turns) if answers else None
            if arr is not None:
                out[role] = Lengths(arr, label)
        return out


def _missing(spec: PairSpec) -> str:
    return (
        f"skipped {spec.name} on {spec.source}: {spec.source} is not in the data build "
        "(RouterDC is evaluation-only and needs ../shared/data)"
    )


def _priced(t: PairTable) -> PairTable:
    """Single turn: each side's per-query outcome (eqs. 6-7 with per-row response lengths)."""
    import dataclasses

    from localroute.core.accounting import side_outcome

    lp, ct = t.col("prompt_words"), t.col("context_words")
    lr = {}
    for role in ("local", "cloud"):
        mean = t.sides[role].mean_response_tokens.f
        arr = t.lengths[role].words if role in t.lengths else None
        lr[role] = (
            np.where(np.isfinite(arr), arr, mean) if arr is not None else np.full(lp.shape, mean)
        )
    t_s = t.latency.t_local(lp, ct, response_tokens=lr["local"])
    t_e = t.latency.t_cloud(lp, ct, response_tokens=lr["cloud"])
    local = side_outcome(t.sides["local"], t.col("q_local"), t_s, lp + ct, lr["local"])
    cloud = side_outcome(t.sides["cloud"], t.col("q_cloud"), t_e, lp + ct, lr["cloud"])
    return dataclasses.replace(t, local=local, cloud=cloud, gap=t_e - t_s)
