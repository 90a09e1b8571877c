"""RouteLLM's published outcomes (Mixtral-8x7B vs GPT-4) on GSM8K, MMLU and MT-Bench.

GSM8K and MMLU share one shape: a CSV of prompts with each model's pass/fail, joined to the
benchmark's gold answer by question text and flagged where RouteLLM lists the prompt as seen in
its own training data. One reader and one loader serve both.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from localroute.data.loaders.gsm8k_mmlu import gsm8k_gold, mmlu_by_prompt
from localroute.data.loaders.mtbench import (
    by_question_id,
    mtbench_query,
    mtbench_questions,
    mtbench_references,
)
from localroute.data.loaders.rows import (
    GPT4,
    MIXTRAL,
    SourceTables,
    outcome,
    published_run_id,
    query,
    tables,
    user,
)
from localroute.data.readers import field, parse_bool, read_csv, read_jsonl
from localroute.data.splits import hashed_split, normalise
from localroute.errors import DataError

ORIGIN = "lm-sys/RouteLLM @ 0b64fda"
RUN_ID = published_run_id(ORIGIN)
MODELS = (MIXTRAL, GPT4)
GRADING = {"gsm8k": "number", "mmlu": "mc_letter"}


@cache
def contaminated_prompts(root: Path, task: str) -> frozenset[str]:
    path = root / "routellm" / task / "contaminated_prompts.jsonl"
    rows = read_jsonl(path)
    return frozenset(normalise(field(r, "eval_prompt", str, path, "a row")) for r in rows)


def _files(root: Path, task: str) -> list[tuple[Path, str]]:
    """(CSV, task or subject) of RouteLLM's response files for gsm8k or mmlu."""
    if task == "gsm8k":
        return [(root / "routellm" / "gsm8k" / "gsm8k_responses.csv", "gsm8k")]
    folder = root / "routellm" / "mmlu" / "responses"
    files = sorted(folder.glob("mmlu_*.csv"))
    if not files:
        raise DataError(f"{folder}: no mmlu_*.csv files")
    return [(path, path.stem[len("mmlu_") :]) for path in files]


@cache
def routellm_rows(root: Path, task: str) -> list[dict]:
    """RouteLLM's rows for gsm8k or mmlu: qid, task, prompt, correct and (GSM8K only) answer,
    the last two keyed by model."""
    with_answers = task == "gsm8k"
    out = []
    for path, subject in _files(root, task):
        cols = ["prompt", *MODELS] + ([f"{m}_response" for m in MODELS] if with_answers else [])
        for i, row in enumerate(read_csv(path, cols)):
            where = f"line {i + 2}"
            out.append(
                {
                    "qid": i if task == "gsm8k" else f"{subject}:{i}",
                    "task": subject,
                    "prompt": row["prompt"],
                    "correct": {m: parse_bool(row[m], path, where) for m in MODELS},
                    "answer": {m: row[f"{m}_response"] for m in MODELS} if with_answers else {},
                }
            )
    return out


def routellm_by_prompt(root: Path, task: str) -> dict[str, dict]:
    return {normalise(r["prompt"]): r for r in routellm_rows(root, task)}


def _gold(root: Path, task: str) -> dict[str, tuple[str, list[str] | None]]:
    """Normalised prompt -> (gold answer, choices): GSM8K's test split, or MMLU by its prompt."""
    if task == "gsm8k":
        return {k: (v, None) for k, v in gsm8k_gold(root, ("test",)).items()}
    return {k: (r["reference"], r["choices"]) for k, r in mmlu_by_prompt(root).items()}


def _load(task: str):
    source = f"routellm_{task}"

    def load(root: Path, run_id: str) -> SourceTables:
        gold = _gold(root, task)
        contaminated = contaminated_prompts(root, task)
        queries, outcomes = [], []
        for row in routellm_rows(root, task):
            key = normalise(row["prompt"])
            reference, choices = gold.get(key, (None, None))
            q = query(
                source,
                row["qid"],
                row["task"],
                user(row["prompt"]),
                GRADING[task],
                hashed_split(key),
                reference,
                choices,
                contam=key in contaminated,
            )
            queries.append(q)
            for model, ok in row["correct"].items():
                answer = row["answer"].get(model)
                outcomes.append(outcome(q, model, run_id, float(ok), correct=ok, answer=answer))
        return tables(source, queries, outcomes)

    load.__doc__ = f"RouteLLM's {task} outcomes, joined to the gold answer by question text."
    return load


load_routellm_gsm8k = _load("gsm8k")
load_routellm_mmlu = _load("mmlu")


def load_routellm_mtbench(root: Path, run_id: str) -> SourceTables:
    """RouteLLM's GPT-4 judge scores per MT-Bench turn, 1-10, normalised to [0, 1]."""
    source = "routellm_mtbench"
    refs = mtbench_references(root)
    contaminated = contaminated_prompts(root, "mt_bench")
    queries = []
    for q in mtbench_questions(root):
        row = mtbench_query(source, q, refs)
        row["contaminated"] = any(normalise(t) in contaminated for t in q["turns"])
        queries.append(row)
    by_id = by_question_id(queries)
    path = root / "routellm" / "mt_bench" / "judgements.jsonl"
    outcomes, seen = [], set()
    for i, row in enumerate(read_jsonl(path)):
        where = f"line {i + 1}"
        qid = field(row, "question_id", int, path, where)
        model = field(row, "model", str, path, where)
        turn = field(row, "turn", int, path, where)
        raw = float(field(row, "score", (int, float), path, where))
        if qid not in by_id:
            raise DataError(f"{path}: {where} question_id {qid} is not an MT-Bench question")
        if not 1 <= raw <= 10:
            raise DataError(f"{path}: {where} judge score {raw} is outside 1-10")
        if (qid, model, turn) in seen:
            raise DataError(f"{path}: {where} repeats question {qid} turn {turn} for {model}")
        seen.add((qid, model, turn))
        outcomes.append(outcome(by_id[qid], model, run_id, (raw - 1) / 9, turn=turn, raw=raw))
    return tables(source, queries, outcomes)
