"""The row shapes every loader emits: a query, a published outcome, and a source's three tables."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from localroute.data.schema import MODEL_SCHEMA, OUTCOME_SCHEMA, QUERY_SCHEMA, to_table
from localroute.data.splits import resolve_leaks

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GPT4 = "gpt-4-1106-preview"
# Sizes a model's name does not tell. Mixtral 8x7B: 46.7B total parameters (Mistral AI, 2023).
NAMED_SIZES_B: dict[str, float | None] = {MIXTRAL: 46.7, GPT4: None}
SIZE = re.compile(r"(\d+(?:\.\d+)?)[bB](?![a-zA-Z])")


@dataclass(frozen=True)
class SourceTables:
    queries: pa.Table
    outcomes: pa.Table
    models: pa.Table


def published_run_id(origin: str) -> str:
    """The run_id of outcomes copied from `origin` (repository @ commit)."""
    return f"published:{origin.replace(' ', '')}"


def model_size_b(name: str) -> float | None:
    """Parameters in billions: from a published figure where known, else from the model's name."""
    if name in NAMED_SIZES_B:
        return NAMED_SIZES_B[name]
    match = SIZE.search(name.split("/")[-1])
    return float(match.group(1)) if match else None


def user(*texts: str) -> list[dict]:
    return [{"role": "user", "content": t} for t in texts]


def query(source, qid, task, turns, grading, split, reference=None, choices=None, contam=False):
    return {
        "query_id": f"{source}:{qid}",
        "source": source,
        "task": task,
        "turns": turns,
        "n_user_turns": sum(1 for t in turns if t["role"] == "user"),
        "choices": choices,
        "reference": reference,
        "grading": grading,
        "split": split,
        "contaminated": contam,
    }


def outcome(q, model, run_id, score=None, turn=1, correct=None, answer=None, raw=None):
    return {
        "query_id": q["query_id"],
        "source": q["source"],
        "turn": turn,
        "model": model,
        "model_size_b": model_size_b(model),
        "answer": answer,
        "score": score,
        "score_raw": raw,
        "correct": correct,
        "provenance": "published",
        "run_id": run_id,
        "energy_provenance": "absent",
        "latency_provenance": "absent",
    }


def tables(name: str, queries: list[dict], outcomes: list[dict], models=None) -> SourceTables:
    """Assemble a source's tables; a question its own splits repeat moves to the held-out side."""
    texts = [" ".join(t["content"] for t in q["turns"] if t["role"] == "user") for q in queries]
    for q, split in zip(queries, resolve_leaks(texts, [q["split"] for q in queries]), strict=True):
        q["split"] = split
    if not models:
        seen = sorted({o["model"] for o in outcomes})
        models = [
            {"model": m, "source": name, "size_b": model_size_b(m), "provenance": "published"}
            for m in seen
        ]
    return SourceTables(
        to_table(queries, QUERY_SCHEMA, f"{name} queries"),
        to_table(outcomes, OUTCOME_SCHEMA, f"{name} outcomes"),
        to_table(models, MODEL_SCHEMA, f"{name} models"),
    )
