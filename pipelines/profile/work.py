"""What a profile run has to do and what it has done: the selected queries, the (query, turn)
keys already on disk, and the outcome files' names and layout."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.profile.config import ProfileConfig


def select_queries(data_dir: str | Path, pc: ProfileConfig, seed: int) -> pa.Table:
    """The queries to profile: the configured sources and split, `limit` per source by hash."""
    import pyarrow.compute as pcmp

    from localroute.data.build import read_table

    table = read_table(data_dir, "queries", pc.sources)
    if pc.split:
        table = table.filter(pcmp.equal(table["split"], pc.split))
    if pc.limit:
        keep = []
        for source in sorted(set(table["source"].to_pylist())):
            ids = table.filter(pcmp.equal(table["source"], source))["query_id"].to_pylist()
            keep += sorted(ids, key=lambda q: _digest(f"{seed}:{q}"))[: pc.limit]
        table = table.filter(pcmp.is_in(table["query_id"], pa.array(keep)))
    return table


def done_keys(out_dir: Path, model: str, hardware: str) -> set[tuple[str, int]]:
    """(query_id, turn) already written for this model and hardware."""
    done: set[tuple[str, int]] = set()
    for path in sorted(
        (out_dir / "outcomes").glob(f"{_slug(model)}--{_slug(hardware)}--*.parquet")
    ):
        t = pq.read_table(path, columns=["query_id", "turn", "model", "hardware"])
        for q, turn, m, h in zip(*(t[c].to_pylist() for c in t.column_names), strict=True):
            if m == model and h == hardware:
                done.add((q, turn))
    return done


def pending(queries: pa.Table, done: set[tuple[str, int]], max_turns: int) -> pa.Table:
    """Queries with a turn still to run, with a `skip_turns` column of the turns already done."""
    keep, skips = [], []
    for i, (q, n) in enumerate(
        zip(queries["query_id"].to_pylist(), queries["n_user_turns"].to_pylist(), strict=True)
    ):
        skip = [t for t in range(1, min(n, max_turns) + 1) if (q, t) in done]
        if len(skip) < min(n, max_turns):
            keep.append(i)
            skips.append(skip)
    table = queries.take(pa.array(keep, pa.int64()))
    return table.append_column("skip_turns", pa.array(skips, pa.list_(pa.int16())))


def outcome_file(model: str, hardware: str, keys: list[tuple[str, int]]) -> str:
    return f"{_slug(model)}--{_slug(hardware)}--{_digest(repr(keys))[:16]}.parquet"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_profile_outcomes(out_dir: str | Path) -> pa.Table:
    """Every outcome row a profile run wrote under `out_dir`, validated against OUTCOME_SCHEMA."""
    from localroute.data.build import read_table

    return read_table(out_dir, "outcomes")
