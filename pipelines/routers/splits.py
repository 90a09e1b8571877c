"""A source's (or several sources') train/val/test examples for one (local, cloud) pair.

Splits: the source's train split fits, its val split (else a seeded tenth of train) calibrates
and early-stops, its test split (contaminated prompts dropped) is what every figure reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from localroute.data.splits import hashed_split
from localroute.errors import DataError
from localroute.routers.config import RoutersConfig
from localroute.routers.examples import pair_examples, score_matrix, split_of, to_batch


@dataclass
class Splits:
    source: str
    local: str
    cloud: str
    models: list[str]
    train: dict
    val: dict
    test: dict
    # role -> where its labels come from; provenance -> labelled rows (train + val)
    label_sources: dict | None = None
    label_counts: dict | None = None


def parse_pair(pair: str) -> tuple[str, str]:
    parts = [p.strip() for p in pair.split(",")]
    if len(parts) != 2 or not all(parts):
        raise DataError(f"--pair must be LOCAL,CLOUD (two model names), got {pair!r}")
    return parts[0], parts[1]


def load_splits(
    data_dir: Path,
    source: str,
    pair: str,
    rcfg: RoutersConfig,
    seed: int,
    need_train=True,
    extra: pa.Table | None = None,
) -> Splits:
    local, cloud = parse_pair(pair)
    examples = pair_examples(data_dir, source, local, cloud, rcfg.rule, rcfg.bar, extra=extra)
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
    """load_splits for one source, load_multi for a list, "all", or a holdout; load_profiled for
    `profile:DIR` (the outcome rows `localroute profile` measured), load_feedback for
    `feedback:DIR` (serve's shadow labels), load_union when they are listed with other data."""
    parts = [x.strip() for x in data.split(",") if x.strip()]
    if len(parts) > 1 and any(x.startswith((PROFILE, FEEDBACK)) for x in parts):
        return load_union(data_dir, parts, pair, rcfg, seed)
    if data.startswith(PROFILE):
        return load_profiled(data_dir, data, pair, rcfg, seed)
    if data.startswith(FEEDBACK):
        return load_feedback(data, pair, rcfg)
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


PROFILE, FEEDBACK = "profile:", "feedback:"
MIN_TRAIN, MIN_VAL = 50, 20  # labelled rows below which a router learns nothing worth serving


def measured_rows(spec: str, model: str) -> pa.Table:
    """The scored rows of `model` that `localroute profile` measured under `profile:DIR`."""
    import pyarrow.compute as pc

    from localroute.data.build import read_table

    path = Path(spec[len(PROFILE) :])
    if not (path / "outcomes").is_dir():
        raise DataError(f"--data {spec}: {path} has no outcomes/ (a `localroute profile` --out)")
    t = read_table(path, "outcomes")
    t = t.filter(pc.and_(pc.equal(t["provenance"], "measured"), pc.is_valid(t["score"])))
    models = sorted(set(t["model"].to_pylist()))
    if model not in models:
        known = ", ".join(models) or "none"
        raise DataError(f"--data {spec}: no measured rows of {model!r}; it measured {known}")
    return t.filter(pc.equal(t["model"], model))


def enough_labels(counts: dict[str, int], what: str, joined: str, hint: str) -> None:
    """One DataError with the counts when labelled rows are too few to train and calibrate on."""
    if counts["train"] < MIN_TRAIN or counts["val"] < MIN_VAL or not counts["test"]:
        raise DataError(
            f"{what} give {counts['train']} train / {counts['val']} val / {counts['test']} test "
            f"examples{joined} (need >= {MIN_TRAIN} train, {MIN_VAL} val, 1 test); {hint}"
        )


def load_profiled(data_dir: Path, spec: str, pair: str | None, rcfg, seed: int) -> Splits:
    """Examples labelled by the deployed local model's measured outcomes (the profile rows) and
    the cloud model's published outcomes on the same queries, per source the rows cover; the
    queries' own splits. Too few labelled rows is one DataError with the counts."""
    import pyarrow.compute as pc

    if not pair or pair == "auto":
        raise DataError(f"--data {spec} needs --pair LOCAL,CLOUD (the measured model first)")
    local, cloud = parse_pair(pair)
    rows = measured_rows(spec, local)
    parts: dict[str, Splits] = {}
    for src in sorted(set(rows["source"].to_pylist())):
        extra = rows.filter(pc.equal(rows["source"], src))
        try:
            parts[src] = load_splits(data_dir, src, pair, rcfg, seed, need_train=False, extra=extra)
        except DataError:
            continue  # the cloud model has no outcomes there, or no test query was measured
    counts = {
        k: sum(len(getattr(p, k)["text"]) for p in parts.values()) for k in ("train", "val", "test")
    }
    enough_labels(
        counts,
        f"--data {spec}: {rows.num_rows} measured rows of {local}",
        f" with {cloud}'s published outcomes",
        "profile more queries: profile.split: null and a larger profile.limit, on sources where "
        f"{cloud} has outcomes",
    )
    if len(parts) == 1:
        (out,) = parts.values()
    else:
        out = Splits(
            ",".join(parts),
            local,
            cloud,
            [local, cloud],
            concat([tagged(p.train, s) for s, p in parts.items()]),
            concat([tagged(p.val, s) for s, p in parts.items()]),
            concat([tagged(p.test, s) for s, p in parts.items()]),
        )
    out.label_sources = {
        "local": f"measured ({local}, {spec})",
        "cloud": f"published ({cloud}, {', '.join(parts)})",
    }
    out.label_counts = {"measured": counts["train"] + counts["val"], "published": 0, "feedback": 0}
    return out


def load_feedback(spec: str, pair: str | None, rcfg) -> Splits:
    """Examples from the shadow labels `localroute serve` wrote (serve.feedback): both deployed
    models' graded answers on live requests, split by a seeded hash of the prompt. A corrupt or
    foreign file is one DataError naming it (read_table validates every file)."""
    from localroute.data.build import read_table
    from localroute.routers.examples import examples_from

    path = Path(spec[len(FEEDBACK) :])
    if not (path / "outcomes").is_dir() or not (path / "queries").is_dir():
        raise DataError(f"--data {spec}: {path} holds no shadow labels (queries/, outcomes/)")
    if not pair or pair == "auto":
        raise DataError(f"--data {spec} needs --pair LOCAL,CLOUD (the deployed models)")
    local, cloud = parse_pair(pair)
    ex = examples_from(
        read_table(path, "queries"), read_table(path, "outcomes"), "feedback", local, cloud,
        rcfg.rule, rcfg.bar,
    )  # fmt: skip
    parts = {k: to_batch(split_of(ex, k)) for k in ("train", "val", "test")}
    counts = {k: len(v["text"]) for k, v in parts.items()}
    enough_labels(
        counts,
        f"--data {spec}: {ex.num_rows} shadow-labelled requests for {local} vs {cloud}",
        "",
        "let serve label more traffic",
    )
    out = Splits(
        "feedback", local, cloud, [local, cloud], parts["train"], parts["val"], parts["test"]
    )
    out.label_sources = {r: f"feedback (shadow labels, {spec})" for r in ("local", "cloud")}
    out.label_counts = {"feedback": counts["train"] + counts["val"], "published": 0, "measured": 0}
    return out


def load_union(data_dir: Path, parts: list[str], pair: str | None, rcfg, seed: int) -> Splits:
    """Labels of the deployed pair (`feedback:` / `profile:` parts, for `pair`) in union with
    public sources (each for its own default pair, e.g. what the served router was first trained
    on) as a prior: each public part's rows are weighted so that it weighs as much in all as the
    deployed pair's labels (label-balanced within each part). Validation and test are the deployed
    pair's own, so p is calibrated, and theta chosen, for the models actually served."""
    live, public = [], []
    for part in parts:
        if part.startswith(FEEDBACK):
            live.append(load_feedback(part, pair, rcfg))
        elif part.startswith(PROFILE):
            live.append(load_profiled(data_dir, part, pair, rcfg, seed))
        else:
            given = pair_for(data_dir, part, None)
            public.append((part, load_splits(data_dir, part, given, rcfg, seed, need_train=False)))
    if not live:
        raise DataError(f"--data {','.join(parts)}: no feedback: or profile: part for {pair}")
    n_live = sum(len(s.train["text"]) for s in live)
    trains = [balanced(tagged(s.train, s.source)) for s in live]
    for name, s in public:
        b = balanced(tagged(s.train, name))
        b["weight"] = b["weight"] * (n_live / max(1, len(b["text"])))
        trains.append(b)
    first = live[0]
    out = Splits(
        ",".join(parts),
        first.local,
        first.cloud,
        [first.local, first.cloud],
        concat(trains),
        concat([tagged(s.val, s.source) for s in live]),
        concat([tagged(s.test, s.source) for s in live]),
    )
    out.label_sources = dict(first.label_sources or {})
    counts = {"published": sum(len(s.train["text"]) + len(s.val["text"]) for _, s in public)}
    for k in ("measured", "feedback"):  # the live parts' own labels
        counts[k] = sum((s.label_counts or {}).get(k, 0) for s in live)
    out.label_counts = counts
    out.pairs = {s.source: f"{s.local},{s.cloud}" for s in live}  # type: ignore[attr-defined]
    out.pairs.update({n: f"{s.local},{s.cloud}" for n, s in public})
    out.train_sources = [*(s.source for s in live), *(n for n, _ in public)]  # type: ignore[attr-defined]
    return out
