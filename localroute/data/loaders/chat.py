"""Open-ended chat prompts with no published outcomes: Arena-Hard and the ShareGPT-500 sample."""

from __future__ import annotations

from pathlib import Path

from localroute.data.loaders.rows import SourceTables, query, tables, user
from localroute.data.readers import field, read_json, read_jsonl
from localroute.data.splits import hashed_split
from localroute.errors import DataError


def load_arena_hard(root: Path, run_id: str) -> SourceTables:
    queries = []
    for version in ("v0.1", "v2.0"):
        path = root / "arena_hard" / f"{version}_question.jsonl"
        for i, row in enumerate(read_jsonl(path)):
            where = f"line {i + 1}"
            prompt = field(row, "prompt", str, path, where)
            task = row.get("subcategory") or row.get("cluster") or row.get("category")
            uid = field(row, "uid", str, path, where)
            queries.append(
                query(
                    "arena_hard",
                    f"{version}:{uid}",
                    task,
                    user(prompt),
                    "judge",
                    hashed_split(prompt),
                )
            )
    return tables("arena_hard", queries, [])


def load_sharegpt500(root: Path, run_id: str) -> SourceTables:
    path = root / "sharegpt500" / "ShareGPT_V3_filtered_500.json"
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of conversations")
    queries = []
    for i, row in enumerate(data):
        where = f"entry {i}"
        convo = field(row, "conversations", list, path, where)
        first = next((c.get("value") for c in convo if c.get("from") == "human"), None)
        if not isinstance(first, str):
            raise DataError(f"{path}: {where} has no human turn")
        cid = field(row, "id", str, path, where)
        queries.append(query("sharegpt500", cid, "chat", user(first), "judge", hashed_split(first)))
    return tables("sharegpt500", queries, [])
