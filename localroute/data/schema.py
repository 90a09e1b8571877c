"""Arrow schemas of the query and outcome tables.

A measurement that was not taken is null, never 0: every latency, energy or token column is
nullable, and each figure's provenance travels in its own column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from localroute.errors import DataError

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

QUERY_SCHEMA = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("task", pa.string()),
        # The conversation: user turns, and assistant turns where the source fixes them.
        pa.field("turns", pa.list_(MESSAGE), nullable=False),
        pa.field("n_user_turns", pa.int16(), nullable=False),
        pa.field("choices", pa.list_(pa.string())),
        pa.field("reference", pa.string()),
        # How an answer is graded: mc_letter, number, exact, f1, code, judge, none, ...
        pa.field("grading", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        # The prompt overlaps a published router's training data (RouteLLM's list).
        pa.field("contaminated", pa.bool_(), nullable=False),
    ]
)

OUTCOME_SCHEMA = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("turn", pa.int16(), nullable=False),  # 1-based user turn
        pa.field("model", pa.string(), nullable=False),
        pa.field("model_size_b", pa.float64()),  # parameters, billions; null when unpublished
        pa.field("hardware", pa.string()),
        pa.field("engine", pa.string()),
        pa.field("tokens_in", pa.int64()),
        pa.field("tokens_out", pa.int64()),
        pa.field("ttft_s", pa.float64()),
        pa.field("tpot_s", pa.float64()),
        pa.field("latency_s", pa.float64()),
        pa.field("latency_provenance", pa.string()),
        pa.field("energy_j", pa.float64()),
        pa.field("energy_scope", pa.string()),  # gpu_board, soc, cpu_package, node, ...
        pa.field("energy_provenance", pa.string()),  # measured, estimated, calibrated, absent
        pa.field("cost_usd", pa.float64()),
        pa.field("answer", pa.string()),
        pa.field("score", pa.float64()),  # in [0, 1]
        pa.field("score_raw", pa.float64()),  # the source's own scale (e.g. judge 1-10)
        pa.field("correct", pa.bool_()),  # null where the grading is not pass/fail
        pa.field("error", pa.string()),
        pa.field("provenance", pa.string(), nullable=False),  # published, measured, ...
        pa.field("run_id", pa.string(), nullable=False),
    ]
)

MODEL_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("size_b", pa.float64()),
        pa.field("input_usd_per_m", pa.float64()),
        pa.field("output_usd_per_m", pa.float64()),
        pa.field("provenance", pa.string(), nullable=False),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "queries": QUERY_SCHEMA,
    "outcomes": OUTCOME_SCHEMA,
    "models": MODEL_SCHEMA,
}


def to_table(rows: Iterable[Mapping[str, Any]], schema: pa.Schema, what: str) -> pa.Table:
    """Build a table from dicts; absent keys become null, unknown keys are an error."""
    rows = list(rows)
    names = set(schema.names)
    for row in rows:
        extra = set(row) - names
        if extra:
            raise DataError(f"{what}: unknown column(s) {sorted(extra)}")
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    try:
        table = pa.Table.from_pydict(columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"{what}: {exc}") from exc
    validate(table, schema, what)
    return table


def validate(table: pa.Table, schema: pa.Schema, what: str) -> None:
    """Check a table against a schema: same columns and types, no null in required columns."""
    if table.schema.names != schema.names:
        missing = sorted(set(schema.names) - set(table.schema.names))
        extra = sorted(set(table.schema.names) - set(schema.names))
        raise DataError(
            f"{what}: columns differ from the schema (missing {missing}, extra {extra})"
        )
    for field in schema:
        column = table.column(field.name)
        if column.type != field.type:
            raise DataError(f"{what}: column {field.name} is {column.type}, expected {field.type}")
        if not field.nullable and column.null_count:
            raise DataError(f"{what}: column {field.name} has {column.null_count} null value(s)")
    if "score" in schema.names and table.num_rows:
        import pyarrow.compute as pc

        bad = pc.or_(pc.less(table["score"], 0.0), pc.greater(table["score"], 1.0))
        n_bad = pc.sum(pc.cast(pc.fill_null(bad, False), pa.int64())).as_py()
        if n_bad:
            raise DataError(f"{what}: {n_bad} score value(s) outside [0, 1]")
