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
    import pyarrow.compute as pcmp

    turns = pcmp.min_element_wise(queries["n_user_turns"], max_turns).to_pylist()
    touched = pcmp.is_in(queries["query_id"], pa.array(sorted({q for q, _ in done}), pa.string()))
    # Only queries with a turn on disk need a look at their turns (a fresh run skips this loop).
    skip_of: dict[int, list[int]] = {}
    for i in pcmp.indices_nonzero(pcmp.fill_null(touched, False)).to_pylist():
        q = queries["query_id"][i].as_py()
        skip_of[i] = [t for t in range(1, turns[i] + 1) if (q, t) in done]
    keep = [i for i, n in enumerate(turns) if len(skip_of.get(i, ())) < n]
    table = queries.take(pa.array(keep, pa.int64()))
    column = pa.array([skip_of.get(i, []) for i in keep], pa.list_(pa.int16()))
    return table.append_column("skip_turns", column)


def write_outcomes(out_dir: Path, table: pa.Table) -> None:
    """Outcome rows into `out_dir/outcomes`, one file per (model, hardware) named by its keys,
    each written to a temporary name and renamed: a reader never sees half a file, and a batch
    written twice replaces itself rather than duplicating rows."""
    import os
    import uuid

    import pyarrow.compute as pcmp

    folder = out_dir / "outcomes"
    folder.mkdir(parents=True, exist_ok=True)
    labels = zip(table["model"].to_pylist(), table["hardware"].to_pylist(), strict=True)
    for model, hardware in sorted(set(labels)):
        part = table.filter(
            pcmp.and_(pcmp.equal(table["model"], model), pcmp.equal(table["hardware"], hardware))
        )
        keys = sorted(zip(part["query_id"].to_pylist(), part["turn"].to_pylist(), strict=True))
        name = outcome_file(model, hardware, keys)
        tmp = folder / f".{name}.{uuid.uuid4().hex}.tmp"
        pq.write_table(part, tmp)
        os.replace(tmp, folder / name)


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
