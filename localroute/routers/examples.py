"""Router training examples: one row per (query, turn) where both models of a pair answered.

For a (local, cloud) pair the local model *suffices* when its score is at least the cloud's
(rule "ge") or at least a quality bar (rule "bar"); the label a router learns is
`needs_cloud = not suffices`, and a router's score p estimates P(needs_cloud).

What a router reads of each example (the prompt, its history, their lengths) comes from
features.py, which the request path shares; this module is the offline side (pyarrow, the
data build).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from localroute.data.build import read_table
from localroute.errors import DataError
from localroute.routers.features import Batch, conversation_text, split_conversation

__all__ = [
    "Batch",
    "conversation_text",  # moved to features.py (no pyarrow); import it from there
    "pair_examples",
    "score_matrix",
    "split_of",
    "to_batch",
]


def pair_examples(
    data_dir: str | Path,
    source: str,
    local: str,
    cloud: str,
    rule: str = "ge",
    bar: float | None = None,
    extra: pa.Table | None = None,
) -> pa.Table:
    """Join a source's queries with the two models' outcomes into labelled examples; ``extra``:
    more outcome rows (query_id, turn, model, score), e.g. a model measured here."""
    outcomes = read_table(data_dir, "outcomes", [source])
    if extra is not None:
        cols = ["query_id", "turn", "model", "score"]
        outcomes = pa.concat_tables(
            [outcomes.select(cols), extra.select(cols).cast(outcomes.select(cols).schema)]
        )
    queries = read_table(data_dir, "queries", [source])
    return examples_from(queries, outcomes, source, local, cloud, rule, bar)


def examples_from(
    queries: pa.Table,
    outcomes: pa.Table,
    source: str,
    local: str,
    cloud: str,
    rule: str = "ge",
    bar: float | None = None,
) -> pa.Table:
    """Labelled examples from a queries and an outcomes table (a build's source, or the
    shadow labels serve wrote)."""
    models = set(outcomes["model"].unique().to_pylist())
    missing = [m for m in (local, cloud) if m not in models]
    if missing:
        known = ", ".join(sorted(models)) or "none"
        raise DataError(f"source {source!r} has no outcomes for {missing}; its models: {known}")
    if rule not in ("ge", "bar") or (rule == "bar" and bar is None):
        raise DataError(f"rule must be 'ge' or 'bar' (with a bar), got {rule!r}")
    keep = outcomes.filter(pc.is_valid(outcomes["score"])).select(
        ["query_id", "turn", "model", "score"]
    )
    sides = {}
    for side, model in (("local", local), ("cloud", cloud)):
        t = keep.filter(pc.equal(keep["model"], model)).drop_columns(["model"])
        sides[side] = t.rename_columns(["query_id", "turn", f"q_{side}"])
    joined = sides["local"].join(sides["cloud"], ["query_id", "turn"], join_type="inner")
    joined = joined.sort_by([("query_id", "ascending"), ("turn", "ascending")])
    rows = queries.take(pc.index_in(joined["query_id"], queries["query_id"]))
    for name in ("task", "turns", "split", "contaminated"):
        joined = joined.append_column(name, rows[name])
    texts, histories, prompt_words, context_words = [], [], [], []
    for turns, turn in zip(joined["turns"].to_pylist(), joined["turn"].to_pylist(), strict=True):
        row = split_conversation(turns, turn)
        texts.append(row.prompt)
        histories.append(row.context)
        prompt_words.append(row.prompt_words)
        context_words.append(row.context_words)
    q_local = joined["q_local"].to_numpy()
    q_cloud = joined["q_cloud"].to_numpy()
    suffices = q_local >= q_cloud if rule == "ge" else q_local >= bar
    return pa.table(
        {
            "query_id": joined["query_id"],
            "turn": joined["turn"],
            "task": joined["task"],
            "split": joined["split"],
            "contaminated": joined["contaminated"],
            "text": pa.array(texts, pa.string()),
            "context": pa.array(histories, pa.string()),
            "prompt_words": pa.array(prompt_words, pa.int64()),
            "context_words": pa.array(context_words, pa.int64()),
            "q_local": q_local,
            "q_cloud": q_cloud,
            "label": pa.array((~suffices).astype(np.int8)),
        }
    )


def split_of(examples: pa.Table, *splits: str, drop_contaminated: bool = False) -> pa.Table:
    mask = pc.is_in(examples["split"], pa.array(list(splits)))
    if drop_contaminated:
        mask = pc.and_(mask, pc.invert(examples["contaminated"]))
    return examples.filter(mask)


def to_batch(table: pa.Table) -> dict[str, np.ndarray]:
    """A table as a dict of numpy arrays (strings become object arrays)."""
    return {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}


def score_matrix(
    data_dir: str | Path, source: str, examples: pa.Table
) -> tuple[list[str], np.ndarray]:
    """Every model's score on each example's (query, turn), NaN where it has none.

    Routers that learn from all of a source's models (matrix factorisation) train on this.
    """
    outcomes = read_table(data_dir, "outcomes", [source]).select(
        ["query_id", "turn", "model", "score"]
    )
    outcomes = outcomes.filter(pc.is_valid(outcomes["score"]))
    models = sorted(set(outcomes["model"].to_pylist()))
    row_of = {
        (q, t): i
        for i, (q, t) in enumerate(
            zip(examples["query_id"].to_pylist(), examples["turn"].to_pylist(), strict=True)
        )
    }
    col_of = {m: j for j, m in enumerate(models)}
    matrix = np.full((examples.num_rows, len(models)), np.nan, np.float32)
    for q, t, m, s in zip(
        *(outcomes[c].to_pylist() for c in ("query_id", "turn", "model", "score")), strict=True
    ):
        i = row_of.get((q, t))
        if i is not None:
            matrix[i, col_of[m]] = s
    return models, matrix
