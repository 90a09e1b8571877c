"""LLMRouter (ulab-uiuc): 9 models' scores on 14 tasks, with the models' sizes and prices."""

from __future__ import annotations

import ast
from pathlib import Path

from localroute.data.loaders.rows import SIZE, SourceTables, outcome, query, tables, user
from localroute.data.readers import field, read_json, read_jsonl, read_scored_questions
from localroute.errors import DataError

GRADING = {
    "em_mc": "mc_letter",
    "f1_score": "f1",
    "MATH": "math_answer",
    "GSM8K": "number",
    "code_eval": "code",
    "commongen_coverage": "coverage",
}


def _choices(raw) -> list[str] | None:
    if not isinstance(raw, str) or not raw.startswith("{"):
        return None
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    text = parsed.get("text") if isinstance(parsed, dict) else None
    return [str(t) for t in text] if isinstance(text, list) else None


def _task_rows(base: Path) -> dict[str, dict]:
    """Question text -> its record in default_query_*.jsonl (the first record of a text)."""
    meta: dict[str, dict] = {}
    for split in ("train", "test"):
        path = base / "example_data" / "query_data" / f"default_query_{split}.jsonl"
        for i, row in enumerate(read_jsonl(path)):
            text = field(row, "query", str, path, f"line {i + 1}")
            meta.setdefault(text, row)
    return meta


def _models(base: Path, source: str) -> list[dict]:
    path = base / "example_data" / "llm_candidates" / "default_llm.json"
    catalogue = read_json(path)
    if not isinstance(catalogue, dict):
        raise DataError(f"{path}: expected an object of models")
    models = []
    for name, info in catalogue.items():
        size = field(info, "size", str, path, f"model {name!r}")
        match = SIZE.fullmatch(size.strip())
        if not match:
            raise DataError(f"{path}: model {name!r} size {size!r} is not like '7B'")
        models.append(
            {
                "model": name,
                "source": source,
                "size_b": float(match.group(1)),
                "input_usd_per_m": float(field(info, "input_price", (int, float), path, name)),
                "output_usd_per_m": float(field(info, "output_price", (int, float), path, name)),
                "provenance": "published",
            }
        )
    return models


def load_llmrouter(root: Path, run_id: str) -> SourceTables:
    """LLMRouter's 9-model outcomes, each question joined to its task by exact text."""
    source = "llmrouter"
    base = root / "llmrouter"
    meta = _task_rows(base)
    models = _models(base, source)
    sizes = {m["model"]: m["size_b"] for m in models}
    records = []
    for split in ("train", "test"):
        path = base / "dcrouter_preprocessed" / f"{split}.json"
        for i, text, scores in read_scored_questions(path):
            if text not in meta:
                raise DataError(f"{path}: entry {i} matches no default_query_*.jsonl query")
            unknown = set(scores) - set(sizes)
            if unknown:
                raise DataError(f"{path}: entry {i} scores unknown model(s) {sorted(unknown)}")
            records.append((split, i, text, scores))
    queries, outcomes = [], []
    for split, i, text, scores in records:
        info = meta[text]
        metric = info.get("metric")
        grading = GRADING.get(metric, str(metric))
        q = query(
            source,
            f"{split}:{i}",
            info.get("task_name"),
            user(text),
            grading,
            split,
            str(info.get("ground_truth")),
            _choices(info.get("choices")),
        )
        queries.append(q)
        for model, value in sorted(scores.items()):
            score = float(value)
            correct = None if grading == "coverage" else score >= 1.0
            o = outcome(q, model, run_id, score, correct=correct, raw=score)
            o["model_size_b"] = sizes[model]
            outcomes.append(o)
    return tables(source, queries, outcomes, models)
