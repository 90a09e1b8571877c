"""GSM8K and MMLU: questions with gold answers, and the by-text indexes other sources join on."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from localroute.data.loaders.rows import SourceTables, query, tables, user
from localroute.data.readers import field, read_csv, read_jsonl
from localroute.data.splits import normalise
from localroute.errors import DataError


def mmlu_prompt(question: str, choices: list[str]) -> str:
    """The prompt layout RouteLLM used, so MMLU rows and RouteLLM rows match by text."""
    lines = [question] + [f"{letter}. {c}" for letter, c in zip("ABCD", choices, strict=True)]
    return "\n".join(lines) + "\nAnswer:"


@cache
def gsm8k_rows(root: Path, split: str) -> list[dict]:
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
def mmlu_rows(root: Path, split: str) -> list[dict]:
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
def mmlu_by_prompt(root: Path) -> dict[str, dict]:
    rows = mmlu_rows(root, "test") + mmlu_rows(root, "dev")
    index = {normalise(r["prompt"]): r for r in rows}
    # RouteLLM read MMLU with pandas, which turned the option text "None" into "nan".
    for r in rows:
        if "None" in r["choices"]:
            nan = ["nan" if c == "None" else c for c in r["choices"]]
            index.setdefault(normalise(mmlu_prompt(r["question"], nan)), r)
    return index


def gsm8k_gold(root: Path, splits: tuple[str, ...]) -> dict[str, str]:
    """Normalised GSM8K question -> its final number, over `splits`."""
    return {normalise(r["question"]): r["reference"] for s in splits for r in gsm8k_rows(root, s)}


def load_gsm8k(root: Path, run_id: str) -> SourceTables:
    queries = [
        query("gsm8k", f"{split}:{i}", "math", user(r["question"]), "number", split, r["reference"])
        for split in ("train", "test")
        for i, r in enumerate(gsm8k_rows(root, split))
    ]
    return tables("gsm8k", queries, [])


def load_mmlu(root: Path, run_id: str) -> SourceTables:
    queries = [
        query(
            "mmlu",
            f"{split}:{r['subject']}:{r['index']}",
            r["subject"],
            user(r["prompt"]),
            "mc_letter",
            split,
            r["reference"],
            r["choices"],
        )
        for split in ("test", "dev")
        for r in mmlu_rows(root, split)
    ]
    return tables("mmlu", queries, [])
