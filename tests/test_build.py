"""Splits, the atomic build, the shipped fallback, bad input and the `data` CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from localroute.data.build import SHIPPED, build, read_table, summary
from localroute.data.paths import SHIPPED_DIR
from localroute.data.schema import OUTCOME_SCHEMA, to_table, validate
from localroute.data.sources import SOURCES
from localroute.data.splits import hashed_split, normalise, resolve_leaks
from localroute.errors import DataError

pytestmark = pytest.mark.timeout(180)
QUIET = {"log": lambda *_: None}
LOCALROUTE = str(Path(sys.executable).parent / "localroute")  # the installed command


def test_no_question_in_two_splits(data_build):
    queries = read_table(data_build, "queries")
    for source in {s.name for s in SOURCES}:
        seen: dict[str, set[str]] = {}
        for row in queries.filter(pa.compute.equal(queries["source"], source)).to_pylist():
            key = " ".join(t["content"] for t in row["turns"] if t["role"] == "user")
            seen.setdefault(normalise(key), set()).add(row["split"])
        leaks = [k for k, v in seen.items() if len(v) > 1]
        assert not leaks, f"{source}: {len(leaks)} question(s) in several splits"


def test_hashed_split_is_deterministic_and_near_its_fractions():
    texts = [f"question number {i}" for i in range(20000)]
    splits = [hashed_split(t) for t in texts]
    assert splits == [hashed_split(t) for t in texts]
    assert hashed_split("Some  Question ") == hashed_split("some question")
    share = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert share["train"] == pytest.approx(0.6, abs=0.02)
    assert share["val"] == pytest.approx(0.2, abs=0.02)
    assert hashed_split("q", seed=1) != hashed_split("q", seed=2) or hashed_split(
        "r", seed=1
    ) != hashed_split("r", seed=2)


def test_resolve_leaks_moves_copies_to_the_most_held_out_split():
    assert resolve_leaks(
        ["a", "b", "A ", "c", "c"], ["train", "train", "test", "train", "val"]
    ) == ["test", "train", "test", "val", "val"]


def test_summary_json_via_cli(data_build):
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "localroute"),
            "data",
            "summary",
            str(data_build),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts = json.loads(out)
    assert set(counts) == {"queries", "outcomes"}
    assert counts["queries"]["gsm8k"] == 8792
    assert counts["outcomes"]["routellm_gsm8k"] == 2638
    assert set(counts["queries"]) == {s.name for s in SOURCES}


def test_shipped_build_is_current_and_shippable_only(shared_data, tmp_path):
    """The Parquet build inside the package equals what the loaders make from the raw files."""
    manifest = json.loads((SHIPPED_DIR / "manifest.json").read_text())
    shipped = set(manifest["sources"])
    assert shipped == {s.name for s in SOURCES if s.shippable}
    fresh = tmp_path / "fresh"
    build(fresh, shared_data, sorted(shipped), shippable_only=True, **QUIET)
    for kind in ("queries", "outcomes", "models"):
        assert read_table(fresh, kind).equals(read_table(SHIPPED_DIR, kind)), (
            f"{kind}: the shipped build is stale; run `make shipped-data`"
        )
    notice = (SHIPPED_DIR / "NOTICE").read_text()
    for s in SOURCES:
        assert (s.origin in notice) == s.shippable
    assert "MIT License" in notice


def test_build_without_raw_data_uses_the_shipped_build(tmp_path):
    out = tmp_path / "data"
    manifest = build(out, SHIPPED, **QUIET)
    assert manifest["origin"] == "shipped"
    # "shipped" in a config file, resolved against the file's folder, is still the keyword.
    resolved = build(tmp_path / "again", tmp_path / "configs" / SHIPPED, ["gsm8k"], **QUIET)
    assert resolved["origin"] == "shipped"
    assert summary(out)["outcomes"]["llmrouter"] == (5608 + 500) * 9
    with pytest.raises(DataError, match="not in the shipped build"):
        build(tmp_path / "x", SHIPPED, ["routerdc_gsm8k"], **QUIET)
    assert not (tmp_path / "x").exists()


def test_shippable_only_refuses_unshippable_sources(tmp_path):
    with pytest.raises(DataError, match="may not be shipped"):
        build(tmp_path / "x", SHIPPED, ["sharegpt500"], shippable_only=True, **QUIET)


def _copy_source(shared: Path, tmp: Path, folder: str) -> Path:
    root = tmp / "raw"
    shutil.copytree(shared / folder, root / folder)
    return root


@pytest.mark.parametrize(
    ("folder", "source", "relpath", "damage", "message"),
    [
        (
            "gsm8k",
            "gsm8k",
            "gsm8k/test.jsonl",
            lambda t: t.replace("}", "", 1),
            r"gsm8k/test.jsonl: line 1 is not valid JSON",
        ),
        ("gsm8k", "gsm8k", "gsm8k/train.jsonl", None, r"gsm8k/train.jsonl: file not found"),
        (
            "llmrouter",
            "llmrouter",
            "llmrouter/dcrouter_preprocessed/test.json",
            lambda t: t[:-10],
            r"dcrouter_preprocessed/test.json: not valid JSON",
        ),
        (
            "arena_hard",
            "arena_hard",
            "arena_hard/v0.1_question.jsonl",
            lambda t: t.replace('"prompt"', '"prompt_"', 1),
            r"line 1 has no field 'prompt'",
        ),
    ],
)
def test_bad_source_file_is_one_clear_error_and_writes_nothing(
    shared_data, tmp_path, folder, source, relpath, damage, message
):
    root = _copy_source(shared_data, tmp_path, folder)
    path = root / relpath
    if damage is None:
        path.unlink()
    else:
        path.write_text(damage(path.read_text()))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous build")
    proc = subprocess.run(
        [
            LOCALROUTE,
            "data",
            "build",
            "--out",
            str(out),
            "--source-dir",
            str(root),
            "--sources",
            source,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert pytest.importorskip("re").search(message, lines[0]), lines[0]
    assert (out / "keep.txt").read_text() == "previous build"  # the old output is untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_unknown_source_and_missing_dir(tmp_path):
    with pytest.raises(DataError, match="unknown source 'nope'"):
        build(tmp_path / "x", SHIPPED, ["nope"], **QUIET)
    with pytest.raises(DataError, match="source data directory not found"):
        build(tmp_path / "x", tmp_path / "missing", **QUIET)
    with pytest.raises(DataError, match="not a localroute data build"):
        summary(tmp_path)


def test_schema_validation_rejects_bad_rows():
    good = {
        "query_id": "q",
        "source": "s",
        "turn": 1,
        "model": "m",
        "provenance": "published",
        "run_id": "r",
        "score": 0.5,
    }
    table = to_table([good], OUTCOME_SCHEMA, "outcomes")
    validate(table, OUTCOME_SCHEMA, "outcomes")
    with pytest.raises(DataError, match="outside \\[0, 1\\]"):
        to_table([{**good, "score": 1.5}], OUTCOME_SCHEMA, "outcomes")
    with pytest.raises(DataError, match="column model has 1 null"):
        to_table([{**good, "model": None}], OUTCOME_SCHEMA, "outcomes")
    with pytest.raises(DataError, match="unknown column"):
        to_table([{**good, "speed": 3}], OUTCOME_SCHEMA, "outcomes")
    with pytest.raises(DataError, match="columns differ"):
        validate(table.drop_columns(["error"]), OUTCOME_SCHEMA, "outcomes")
