"""Readers for the raw source files that turn every problem into one DataError naming the file."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from localroute.errors import DataError

csv.field_size_limit(1 << 30)


def require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def read_json(path: Path) -> Any:
    require(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def read_jsonl(path: Path) -> list[dict]:
    require(path)
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {number} is not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {number} is not a JSON object")
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def read_csv(path: Path, columns: list[str]) -> list[dict[str, str]]:
    """Rows of a CSV file with a header that must contain `columns`."""
    require(path)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} in header {header}")
        rows = []
        for number, row in enumerate(reader, 2):
            if None in row or any(row[c] is None for c in columns):
                raise DataError(f"{path}: line {number} has the wrong number of fields")
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def field(row: dict, key: str, kind: type | tuple[type, ...], path: Path, where: str) -> Any:
    """row[key], checked for presence and type, with an error naming the file and the record."""
    if key not in row:
        raise DataError(f"{path}: {where} has no field {key!r}")
    value = row[key]
    if not isinstance(value, kind):
        raise DataError(f"{path}: {where} field {key!r} is {type(value).__name__}")
    return value


def parse_bool(value: str, path: Path, where: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise DataError(f"{path}: {where} expected True/False, got {value!r}")


def read_scored_questions(path: Path) -> list[tuple[int, str, dict]]:
    """A JSON list of ``{"question": str, "scores": {model: score}}`` entries (the DC-router
    format LLMRouter and RouterDC publish), as (index, question, scores)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list")
    return [
        (
            i,
            field(row, "question", str, path, f"entry {i}"),
            field(row, "scores", dict, path, f"entry {i}"),
        )
        for i, row in enumerate(data)
    ]
