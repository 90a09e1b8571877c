"""MT-Bench (80 two-turn questions, 30+ models' answers) and MT-Bench-101 (multi-turn dialogues)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from localroute.data.loaders.rows import SourceTables, outcome, query, tables, user
from localroute.data.readers import field, read_jsonl
from localroute.data.splits import hashed_split
from localroute.errors import DataError


@cache
def mtbench_questions(root: Path) -> list[dict]:
    path = root / "mtbench" / "question.jsonl"
    out = []
    for i, row in enumerate(read_jsonl(path)):
        where = f"line {i + 1}"
        turns = field(row, "turns", list, path, where)
        if not turns or not all(isinstance(t, str) for t in turns):
            raise DataError(f"{path}: {where} field 'turns' must be a non-empty list of strings")
        qid = field(row, "question_id", int, path, where)
        category = field(row, "category", str, path, where)
        out.append({"question_id": qid, "category": category, "turns": turns})
    return out


@cache
def mtbench_references(root: Path) -> dict[int, list[str]]:
    path = root / "mtbench" / "reference_answer" / "gpt-4.jsonl"
    refs = {}
    for i, row in enumerate(read_jsonl(path)):
        choices = field(row, "choices", list, path, f"line {i + 1}")
        refs[field(row, "question_id", int, path, f"line {i + 1}")] = choices[0]["turns"]
    return refs


def mtbench_query(source: str, q: dict, refs: dict[int, list[str]]) -> dict:
    ref = refs.get(q["question_id"])
    return query(
        source,
        q["question_id"],
        q["category"],
        user(*q["turns"]),
        "judge",
        hashed_split(" ".join(q["turns"])),
        # one reference per user turn, as a JSON list, where MT-Bench publishes one
        reference=json.dumps(ref) if ref else None,
    )


def by_question_id(queries: list[dict]) -> dict[int, dict]:
    return {int(q["query_id"].split(":")[1]): q for q in queries}


def load_mtbench(root: Path, run_id: str) -> SourceTables:
    """MT-Bench's 80 two-turn questions and 30+ models' published answers to both turns."""
    source = "mtbench"
    refs = mtbench_references(root)
    queries = [mtbench_query(source, q, refs) for q in mtbench_questions(root)]
    by_id = by_question_id(queries)
    folder = root / "mtbench" / "model_answer"
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise DataError(f"{folder}: no model answer files")
    outcomes = []
    for path in files:
        for i, row in enumerate(read_jsonl(path)):
            where = f"line {i + 1}"
            qid = field(row, "question_id", int, path, where)
            if qid not in by_id:
                raise DataError(f"{path}: {where} question_id {qid} is not in question.jsonl")
            model = field(row, "model_id", str, path, where)
            answers = field(row, "choices", list, path, where)[0].get("turns", [])
            for turn, answer in enumerate(answers, 1):
                outcomes.append(outcome(by_id[qid], model, run_id, turn=turn, answer=answer))
    return tables(source, queries, outcomes)


def load_mtbench101(root: Path, run_id: str) -> SourceTables:
    """MT-Bench-101 dialogues; the assistant turns are the benchmark's fixed golden context."""
    path = root / "mtbench101" / "mtbench101.jsonl"
    queries = []
    for i, row in enumerate(read_jsonl(path)):
        where = f"line {i + 1}"
        task = field(row, "task", str, path, where)
        history = field(row, "history", list, path, where)
        turns = []
        for step in history:
            if not isinstance(step, dict) or not isinstance(step.get("user"), str):
                raise DataError(f"{path}: {where} history entries need a 'user' string")
            turns.append({"role": "user", "content": step["user"]})
            if isinstance(step.get("bot"), str):
                turns.append({"role": "assistant", "content": step["bot"]})
        key = " ".join(t["content"] for t in turns if t["role"] == "user")
        qid = f"{task}:{field(row, 'id', int, path, where)}"
        queries.append(query("mtbench101", qid, task, turns, "judge", hashed_split(key)))
    return tables("mtbench101", queries, [])
