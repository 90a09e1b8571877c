"""Loaders for the public data in ../shared/data, into the query and outcome tables.

Each source is one entry in SOURCES: where its files come from, whether the project may ship a
converted copy, and a loader returning its queries, outcomes and model catalogue. Outcomes taken
from published files carry provenance "published"; they hold no latency or energy (those are null).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pyarrow as pa

from localroute.data.readers import field, parse_bool, read_csv, read_json, read_jsonl
from localroute.data.schema import MODEL_SCHEMA, OUTCOME_SCHEMA, QUERY_SCHEMA, to_table
from localroute.data.splits import hashed_split, normalise, resolve_leaks
from localroute.errors import DataError

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GPT4 = "gpt-4-1106-preview"
# Sizes a model's name does not tell. Mixtral 8x7B: 46.7B total parameters (Mistral AI, 2023).
NAMED_SIZES_B: dict[str, float | None] = {MIXTRAL: 46.7, GPT4: None}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)[bB](?![a-zA-Z])")


@dataclass(frozen=True)
class SourceTables:
    queries: pa.Table
    outcomes: pa.Table
    models: pa.Table


@dataclass(frozen=True)
class Source:
    name: str
    folder: str
    origin: str  # repository @ commit the files were copied from
    licence: str
    shippable: bool  # SOURCES.md allows a converted copy inside the project
    load: Callable[[Path], SourceTables]

    @property
    def run_id(self) -> str:
        return f"published:{self.origin.replace(' ', '')}"


def model_size_b(name: str) -> float | None:
    """Parameters in billions: from a published figure where known, else from the model's name."""
    if name in NAMED_SIZES_B:
        return NAMED_SIZES_B[name]
    match = _SIZE.search(name.split("/")[-1])
    return float(match.group(1)) if match else None


def _user(*texts: str) -> list[dict]:
    return [{"role": "user", "content": t} for t in texts]


def _query(source, qid, task, turns, grading, split, reference=None, choices=None, contam=False):
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


def _outcome(query, model, run_id, score=None, turn=1, correct=None, answer=None, raw=None):
    return {
        "query_id": query["query_id"],
        "source": query["source"],
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


def _tables(name: str, queries: list[dict], outcomes: list[dict], models=None) -> SourceTables:
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


# ---------------------------------------------------------------- shared raw readers (cached)


def mmlu_prompt(question: str, choices: list[str]) -> str:
    """The prompt layout RouteLLM used, so MMLU rows and RouteLLM rows match by text."""
    lines = [question] + [f"{letter}. {c}" for letter, c in zip("ABCD", choices, strict=True)]
    return "\n".join(lines) + "\nAnswer:"


@cache
def _gsm8k(root: Path, split: str) -> list[dict]:
    path = root / "gsm8k" / f"{split}.jsonl"
    rows = read_jsonl(path)
    out = []
    for i, row in enumerate(rows):
        question = field(row, "question", str, path, f"line {i + 1}")
        answer = field(row, "answer", str, path, f"line {i + 1}")
        if "####" not in answer:
            raise DataError(f"{path}: line {i + 1} answer has no '#### <number>' final answer")
        final = answer.rsplit("####", 1)[1].strip().replace(",", "")
        out.append({"question": question, "reference": final})
    return out


@cache
def _mmlu(root: Path, split: str) -> list[dict]:
    folder = root / "mmlu" / split
    files = sorted(folder.glob(f"*_{split}.csv"))
    if not files:
        raise DataError(f"{folder}: no *_{split}.csv files")
    out = []
    for path in files:
        subject = path.name[: -len(f"_{split}.csv")]
        cols = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]
        for i, row in enumerate(read_csv(path, cols)):
            if row["answer"].strip() not in ("0", "1", "2", "3"):
                raise DataError(f"{path}: line {i + 2} answer must be 0-3, got {row['answer']!r}")
            choices = [row[f"choice{k}"] for k in range(4)]
            out.append(
                {
                    "subject": subject,
                    "index": i,
                    "question": row["question"],
                    "choices": choices,
                    "prompt": mmlu_prompt(row["question"], choices),
                    "reference": "ABCD"[int(row["answer"])],
                }
            )
    return out


@cache
def _mmlu_by_prompt(root: Path) -> dict[str, dict]:
    rows = _mmlu(root, "test") + _mmlu(root, "dev")
    index = {normalise(r["prompt"]): r for r in rows}
    # RouteLLM read MMLU with pandas, which turned the option text "None" into "nan".
    for r in rows:
        if "None" in r["choices"]:
            nan = ["nan" if c == "None" else c for c in r["choices"]]
            index.setdefault(normalise(mmlu_prompt(r["question"], nan)), r)
    return index


@cache
def _contaminated(root: Path, task: str) -> frozenset[str]:
    path = root / "routellm" / task / "contaminated_prompts.jsonl"
    rows = read_jsonl(path)
    return frozenset(normalise(field(r, "eval_prompt", str, path, "a row")) for r in rows)


@cache
def _routellm_gsm8k(root: Path) -> list[dict]:
    path = root / "routellm" / "gsm8k" / "gsm8k_responses.csv"
    cols = ["prompt", MIXTRAL, GPT4, f"{MIXTRAL}_response", f"{GPT4}_response"]
    rows = read_csv(path, cols)
    out = []
    for i, row in enumerate(rows):
        where = f"line {i + 2}"
        out.append(
            {
                "prompt": row["prompt"],
                "correct": {m: parse_bool(row[m], path, where) for m in (MIXTRAL, GPT4)},
                "answer": {m: row[f"{m}_response"] for m in (MIXTRAL, GPT4)},
            }
        )
    return out


@cache
def _routellm_mmlu(root: Path) -> list[dict]:
    folder = root / "routellm" / "mmlu" / "responses"
    files = sorted(folder.glob("mmlu_*.csv"))
    if not files:
        raise DataError(f"{folder}: no mmlu_*.csv files")
    out = []
    for path in files:
        subject = path.stem[len("mmlu_") :]
        for i, row in enumerate(read_csv(path, ["prompt", MIXTRAL, GPT4])):
            where = f"line {i + 2}"
            correct = {m: parse_bool(row[m], path, where) for m in (MIXTRAL, GPT4)}
            out.append(
                {"subject": subject, "index": i, "prompt": row["prompt"], "correct": correct}
            )
    return out


def _routellm_by_prompt(root: Path, task: str) -> dict[str, dict]:
    rows = _routellm_gsm8k(root) if task == "gsm8k" else _routellm_mmlu(root)
    return {normalise(r["prompt"]): r for r in rows}


@cache
def _mtbench_questions(root: Path) -> list[dict]:
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
def _mtbench_references(root: Path) -> dict[int, list[str]]:
    path = root / "mtbench" / "reference_answer" / "gpt-4.jsonl"
    refs = {}
    for i, row in enumerate(read_jsonl(path)):
        choices = field(row, "choices", list, path, f"line {i + 1}")
        refs[field(row, "question_id", int, path, f"line {i + 1}")] = choices[0]["turns"]
    return refs


def _mtbench_query(source: str, q: dict, refs: dict[int, list[str]]) -> dict:
    import json

    ref = refs.get(q["question_id"])
    return _query(
        source,
        q["question_id"],
        q["category"],
        _user(*q["turns"]),
        "judge",
        hashed_split(" ".join(q["turns"])),
        # one reference per user turn, as a JSON list, where MT-Bench publishes one
        reference=json.dumps(ref) if ref else None,
    )


# ---------------------------------------------------------------- benchmark sources


def load_gsm8k(root: Path) -> SourceTables:
    queries = [
        _query(
            "gsm8k", f"{split}:{i}", "math", _user(r["question"]), "number", split, r["reference"]
        )
        for split in ("train", "test")
        for i, r in enumerate(_gsm8k(root, split))
    ]
    return _tables("gsm8k", queries, [])


def load_mmlu(root: Path) -> SourceTables:
    queries = [
        _query(
            "mmlu",
            f"{split}:{r['subject']}:{r['index']}",
            r["subject"],
            _user(r["prompt"]),
            "mc_letter",
            split,
            r["reference"],
            r["choices"],
        )
        for split in ("test", "dev")
        for r in _mmlu(root, split)
    ]
    return _tables("mmlu", queries, [])


def load_mtbench(root: Path) -> SourceTables:
    """MT-Bench's 80 two-turn questions and 30+ models' published answers to both turns."""
    source = "mtbench"
    refs = _mtbench_references(root)
    queries = [_mtbench_query(source, q, refs) for q in _mtbench_questions(root)]
    by_id = {int(q["query_id"].split(":")[1]): q for q in queries}
    folder = root / "mtbench" / "model_answer"
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise DataError(f"{folder}: no model answer files")
    run_id = SOURCES_BY_NAME[source].run_id
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
                outcomes.append(_outcome(by_id[qid], model, run_id, turn=turn, answer=answer))
    return _tables(source, queries, outcomes)


def load_mtbench101(root: Path) -> SourceTables:
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
        queries.append(_query("mtbench101", qid, task, turns, "judge", hashed_split(key)))
    return _tables("mtbench101", queries, [])


def load_arena_hard(root: Path) -> SourceTables:
    queries = []
    for version in ("v0.1", "v2.0"):
        path = root / "arena_hard" / f"{version}_question.jsonl"
        for i, row in enumerate(read_jsonl(path)):
            where = f"line {i + 1}"
            prompt = field(row, "prompt", str, path, where)
            task = row.get("subcategory") or row.get("cluster") or row.get("category")
            uid = field(row, "uid", str, path, where)
            queries.append(
                _query(
                    "arena_hard",
                    f"{version}:{uid}",
                    task,
                    _user(prompt),
                    "judge",
                    hashed_split(prompt),
                )
            )
    return _tables("arena_hard", queries, [])


def load_sharegpt500(root: Path) -> SourceTables:
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
        queries.append(
            _query("sharegpt500", cid, "chat", _user(first), "judge", hashed_split(first))
        )
    return _tables("sharegpt500", queries, [])


# ---------------------------------------------------------------- published outcome sources


def load_routellm_gsm8k(root: Path) -> SourceTables:
    source = "routellm_gsm8k"
    run_id = SOURCES_BY_NAME[source].run_id
    gold = {normalise(r["question"]): r["reference"] for r in _gsm8k(root, "test")}
    contaminated = _contaminated(root, "gsm8k")
    queries, outcomes = [], []
    for i, row in enumerate(_routellm_gsm8k(root)):
        key = normalise(row["prompt"])
        q = _query(
            source,
            i,
            "gsm8k",
            _user(row["prompt"]),
            "number",
            hashed_split(key),
            gold.get(key),
            contam=key in contaminated,
        )
        queries.append(q)
        for model, ok in row["correct"].items():
            outcomes.append(
                _outcome(q, model, run_id, float(ok), correct=ok, answer=row["answer"][model])
            )
    return _tables(source, queries, outcomes)


def load_routellm_mmlu(root: Path) -> SourceTables:
    """RouteLLM's MMLU outcomes, joined to MMLU's gold letter and choices by question text."""
    source = "routellm_mmlu"
    run_id = SOURCES_BY_NAME[source].run_id
    gold = _mmlu_by_prompt(root)
    contaminated = _contaminated(root, "mmlu")
    queries, outcomes = [], []
    for row in _routellm_mmlu(root):
        key = normalise(row["prompt"])
        match = gold.get(key)
        q = _query(
            source,
            f"{row['subject']}:{row['index']}",
            row["subject"],
            _user(row["prompt"]),
            "mc_letter",
            hashed_split(key),
            match and match["reference"],
            match and match["choices"],
            contam=key in contaminated,
        )
        queries.append(q)
        for model, ok in row["correct"].items():
            outcomes.append(_outcome(q, model, run_id, float(ok), correct=ok))
    return _tables(source, queries, outcomes)


def load_routellm_mtbench(root: Path) -> SourceTables:
    """RouteLLM's GPT-4 judge scores per MT-Bench turn, 1-10, normalised to [0, 1]."""
    source = "routellm_mtbench"
    run_id = SOURCES_BY_NAME[source].run_id
    refs = _mtbench_references(root)
    contaminated = _contaminated(root, "mt_bench")
    queries = []
    for q in _mtbench_questions(root):
        row = _mtbench_query(source, q, refs)
        row["contaminated"] = any(normalise(t) in contaminated for t in q["turns"])
        queries.append(row)
    by_id = {int(q["query_id"].split(":")[1]): q for q in queries}
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
        outcomes.append(_outcome(by_id[qid], model, run_id, (raw - 1) / 9, turn=turn, raw=raw))
    return _tables(source, queries, outcomes)


_LLMROUTER_GRADING = {
    "em_mc": "mc_letter",
    "f1_score": "f1",
    "MATH": "math_answer",
    "GSM8K": "number",
    "code_eval": "code",
    "commongen_coverage": "coverage",
}


def _llmrouter_choices(raw) -> list[str] | None:
    if not isinstance(raw, str) or not raw.startswith("{"):
        return None
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    text = parsed.get("text") if isinstance(parsed, dict) else None
    return [str(t) for t in text] if isinstance(text, list) else None


def load_llmrouter(root: Path) -> SourceTables:
    """LLMRouter's 9-model outcomes, each question joined to its task by exact text."""
    source = "llmrouter"
    run_id = SOURCES_BY_NAME[source].run_id
    base = root / "llmrouter"
    meta: dict[str, dict] = {}
    for split in ("train", "test"):  # the first record of a text gives its task
        path = base / "example_data" / "query_data" / f"default_query_{split}.jsonl"
        for i, row in enumerate(read_jsonl(path)):
            text = field(row, "query", str, path, f"line {i + 1}")
            meta.setdefault(text, row)
    llm_path = base / "example_data" / "llm_candidates" / "default_llm.json"
    catalogue = read_json(llm_path)
    if not isinstance(catalogue, dict):
        raise DataError(f"{llm_path}: expected an object of models")
    models = []
    for name, info in catalogue.items():
        size = field(info, "size", str, llm_path, f"model {name!r}")
        match = _SIZE.fullmatch(size.strip())
        if not match:
            raise DataError(f"{llm_path}: model {name!r} size {size!r} is not like '7B'")
        models.append(
            {
                "model": name,
                "source": source,
                "size_b": float(match.group(1)),
                "input_usd_per_m": float(field(info, "input_price", (int, float), llm_path, name)),
                "output_usd_per_m": float(
                    field(info, "output_price", (int, float), llm_path, name)
                ),
                "provenance": "published",
            }
        )
    sizes = {m["model"]: m["size_b"] for m in models}
    records = []
    for split in ("train", "test"):
        path = base / "dcrouter_preprocessed" / f"{split}.json"
        data = read_json(path)
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list")
        for i, row in enumerate(data):
            text = field(row, "question", str, path, f"entry {i}")
            scores = field(row, "scores", dict, path, f"entry {i}")
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
        grading = _LLMROUTER_GRADING.get(metric, str(metric))
        q = _query(
            source,
            f"{split}:{i}",
            info.get("task_name"),
            _user(text),
            grading,
            split,
            str(info.get("ground_truth")),
            _llmrouter_choices(info.get("choices")),
        )
        queries.append(q)
        for model, value in sorted(scores.items()):
            score = float(value)
            correct = None if grading == "coverage" else score >= 1.0
            o = _outcome(q, model, run_id, score, correct=correct, raw=score)
            o["model_size_b"] = sizes[model]
            outcomes.append(o)
    return _tables(source, queries, outcomes, models)


def _routerdc(task: str, stem: str, grading: str, correct_rule) -> Callable[[Path], SourceTables]:
    """RouterDC's seven 7-8B models, joined by text with RouteLLM's outcomes where they exist."""
    source = f"routerdc_{task}"

    def load(root: Path) -> SourceTables:
        run_id = SOURCES_BY_NAME[source].run_id
        routellm = _routellm_by_prompt(root, task) if task in ("gsm8k", "mmlu") else {}
        routellm_run = SOURCES_BY_NAME["routellm_gsm8k"].run_id
        gold = (
            {
                normalise(r["question"]): r["reference"]
                for s in ("train", "test")
                for r in _gsm8k(root, s)
            }
            if task == "gsm8k"
            else {k: v["reference"] for k, v in _mmlu_by_prompt(root).items()}
            if task == "mmlu"
            else {}
        )
        contaminated = _contaminated(root, task) if task in ("gsm8k", "mmlu") else frozenset()
        queries, outcomes = [], []
        for split in ("train", "test"):
            path = root / "routerdc_small7" / f"{stem.format(split=split)}.json"
            data = read_json(path)
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a JSON list")
            for i, row in enumerate(data):
                text = field(row, "question", str, path, f"entry {i}")
                scores = field(row, "scores", dict, path, f"entry {i}")
                prompt = text if task != "mmlu" else text + "\nAnswer:"
                key = normalise(prompt)
                q = _query(
                    source,
                    f"{split}:{i}",
                    task,
                    _user(prompt),
                    grading,
                    split,
                    gold.get(key),
                    contam=key in contaminated,
                )
                queries.append(q)
                for model, value in sorted(scores.items()):
                    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                        raise DataError(f"{path}: entry {i} score of {model} is not in [0, 1]")
                    v = float(value)
                    outcomes.append(_outcome(q, model, run_id, v, correct=correct_rule(v), raw=v))
                match = routellm.get(key)
                for model, ok in (match["correct"] if match else {}).items():
                    outcomes.append(_outcome(q, model, routellm_run, float(ok), correct=ok))
        return _tables(source, queries, outcomes)

    return load


SOURCES: tuple[Source, ...] = (
    Source("gsm8k", "gsm8k", "openai/grade-school-math @ 3101c7d", "MIT", True, load_gsm8k),
    Source(
        "mmlu",
        "mmlu",
        "HaeChan0305/MLILAB-FedLLM @ d92730e",
        "Apache-2.0 repo; MMLU itself MIT",
        True,
        load_mmlu,
    ),
    Source(
        "mtbench",
        "mtbench",
        "lm-sys/FastChat @ 0e6d3e4; enricai/FastChat @ edacaa5",
        "Apache-2.0",
        True,
        load_mtbench,
    ),
    Source(
        "mtbench101",
        "mtbench101",
        "mtbench101/mt-bench-101 @ bc18b3e",
        "Apache-2.0",
        True,
        load_mtbench101,
    ),
    Source(
        "routellm_gsm8k",
        "routellm",
        "lm-sys/RouteLLM @ 0b64fda",
        "Apache-2.0",
        True,
        load_routellm_gsm8k,
    ),
    Source(
        "routellm_mmlu",
        "routellm",
        "lm-sys/RouteLLM @ 0b64fda",
        "Apache-2.0",
        True,
        load_routellm_mmlu,
    ),
    Source(
        "routellm_mtbench",
        "routellm",
        "lm-sys/RouteLLM @ 0b64fda",
        "Apache-2.0",
        True,
        load_routellm_mtbench,
    ),
    Source("llmrouter", "llmrouter", "ulab-uiuc/LLMRouter @ 4e7a796", "MIT", True, load_llmrouter),
    # GSM8K scores: fraction correct over 10 samples; MMLU/ARC: 0 or the right option's probability.
    Source(
        "routerdc_gsm8k",
        "routerdc_small7",
        "shuhao02/RouterDC @ 0e63989",
        "none stated",
        False,
        _routerdc("gsm8k", "gsm8k-{split}", "number", lambda v: v >= 0.5),
    ),
    Source(
        "routerdc_mmlu",
        "routerdc_small7",
        "shuhao02/RouterDC @ 0e63989",
        "none stated",
        False,
        _routerdc("mmlu", "mmlu_{split}", "mc_letter", lambda v: v > 0),
    ),
    Source(
        "routerdc_arc",
        "routerdc_small7",
        "shuhao02/RouterDC @ 0e63989",
        "none stated",
        False,
        _routerdc("arc", "arc_challenge_{split}", "mc_letter", lambda v: v > 0),
    ),
    Source(
        "arena_hard",
        "arena_hard",
        "lmarena/arena-hard-auto @ 196f6b8",
        "Apache-2.0",
        True,
        load_arena_hard,
    ),
    Source(
        "sharegpt500",
        "sharegpt500",
        "ml-energy/leaderboard-v2 @ c3af7f3",
        "Apache-2.0 repo; content unclear",
        False,
        load_sharegpt500,
    ),
)
SOURCES_BY_NAME: dict[str, Source] = {s.name: s for s in SOURCES}


def get_source(name: str) -> Source:
    if name not in SOURCES_BY_NAME:
        raise DataError(f"unknown source {name!r}; known: {', '.join(SOURCES_BY_NAME)}")
    return SOURCES_BY_NAME[name]


def clear_caches() -> None:
    """Forget cached raw files (tests edit copies of them)."""
    for fn in (
        _gsm8k,
        _mmlu,
        _mmlu_by_prompt,
        _contaminated,
        _routellm_gsm8k,
        _routellm_mmlu,
        _mtbench_questions,
        _mtbench_references,
    ):
        fn.cache_clear()
