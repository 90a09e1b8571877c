"""The profiling job on the session's local Ray: real queries, the tiny random-weight model,
measured rows, resumability, error rows, and the demo stage the cost model reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cli.config import load_config  # the application's loader: every job section
from localroute.data.build import read_table
from localroute.data.paths import SHIPPED_DIR
from localroute.data.schema import QUERY_SCHEMA
from localroute.errors import ConfigError
from pipelines.profile import PoolConfig, ProfileConfig, read_profile_outcomes, run_profile

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[1]


def _sample_build(root: Path) -> Path:
    """A data build of real queries (GSM8K, MMLU, a two-turn MT-Bench, an MBPP task) plus one
    whose prompt cannot fit the tiny model's context window."""
    q = read_table(SHIPPED_DIR, "queries", ["routellm_gsm8k", "routellm_mmlu", "mtbench"])
    code = read_table(SHIPPED_DIR, "queries", ["llmrouter"])
    parts = [
        q.filter(pc.equal(q["source"], s)).slice(0, 3) for s in ("routellm_gsm8k", "routellm_mmlu")
    ]
    parts.append(q.filter(pc.equal(q["source"], "mtbench")).slice(0, 1))
    parts.append(code.filter(pc.equal(code["grading"], "code")).slice(0, 1))
    long = parts[0].slice(0, 1).to_pylist()[0]
    long |= {"query_id": "too-long", "turns": [{"role": "user", "content": "word " * 3000}]}
    parts.append(pa.Table.from_pylist([long], schema=QUERY_SCHEMA))
    (root / "queries").mkdir(parents=True)
    pq.write_table(pa.concat_tables(parts), root / "queries" / "sample.parquet")
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from localroute.models.tiny import build_tiny_decoder

    return str(build_tiny_decoder(tmp_path_factory.mktemp("models") / "tiny"))


def _config(tiny: str) -> ProfileConfig:
    pool = PoolConfig(
        name="cpu", model=tiny, model_name="tiny", engine_options={"device": "cpu"},
        batch_size=4, tdp_w=65.0,
    )  # fmt: skip
    return ProfileConfig(split=None, max_tokens=8, pools=[pool], run_id="t1")


def _keys(table: pa.Table) -> list[tuple]:
    cols = ("query_id", "turn", "model", "hardware")
    return sorted(zip(*(table[c].to_pylist() for c in cols), strict=True))


def test_profile_rows_resume_and_errors(ray_cluster, tmp_path, tiny):
    data, out = _sample_build(tmp_path / "data"), tmp_path / "profile"
    summary = run_profile(_config(tiny), data, out, seed=1, log=lambda *_: None)
    table = read_profile_outcomes(out)
    # 3 GSM8K + 3 MMLU + 2 MT-Bench turns + 1 MBPP + the one past the context window.
    assert summary["rows"] == {"cpu": 10} and table.num_rows == 10
    rows = {(r["query_id"], r["turn"]): r for r in table.to_pylist()}
    long = rows[("too-long", 1)]
    # Issue 12: an over-long prompt never fails its batch. An engine that refuses it gives one
    # error row with the reason; one that truncates it (keeping the newest tokens) answers it
    # within the model's context window.
    context = json.loads((Path(tiny) / "config.json").read_text())["max_position_embeddings"]
    if long["error"] is not None:
        assert summary["errors"] == 1
        assert "context window" in long["error"] and long["latency_s"] is None
        assert long["energy_j"] is None
    else:
        assert summary["errors"] == 0
        assert long["tokens_in"] + long["tokens_out"] <= context < 3000  # the prompt: 3000 words
        assert long["latency_s"] > 0 and long["answer"] is not None
    for key, r in rows.items():
        assert r["provenance"] == "measured" and r["run_id"] == "t1" and r["hardware"] == "cpu"
        if key[0] == "too-long":
            continue
        assert r["error"] is None and r["latency_provenance"] == "measured"
        assert 0 < r["ttft_s"] <= r["latency_s"] and r["tokens_in"] > 0 and r["tokens_out"] >= 1
        assert r["energy_provenance"] == "estimated" and r["energy_scope"].startswith("cpu")
        assert r["energy_j"] is None or r["energy_j"] > 0
    mtbench = [k for k in rows if k[0].startswith("mtbench")]
    assert sorted(t for _, t in mtbench) == [1, 2]
    assert rows[mtbench[0]]["score"] is None  # judge-graded, no judge configured: null, not 0
    assert all(rows[k]["correct"] is not None for k in rows if k[0].startswith("routellm"))
    code = next(r for k, r in rows.items() if k[0].startswith("llmrouter"))
    assert code["score"] == 0.0 and code["correct"] is False  # noise does not pass MBPP asserts
    # The layout the cost model reads: <out>/outcomes/*.parquet with OUTCOME_SCHEMA.
    assert _keys(read_table(out, "outcomes")) == _keys(table)

    # A rerun skips every key already written.
    again = run_profile(_config(tiny), data, out, seed=1, log=lambda *_: None)
    assert again["rows"] == {"cpu": 0} and _keys(read_profile_outcomes(out)) == _keys(table)

    # Lose one batch's file: only its rows run again, nothing is duplicated.
    files = sorted((out / "outcomes").glob("*.parquet"))
    lost = pq.read_table(files[0]).num_rows
    files[0].unlink()
    third = run_profile(_config(tiny), data, out, seed=1, log=lambda *_: None)
    assert third["rows"] == {"cpu": lost}
    assert _keys(read_profile_outcomes(out)) == _keys(table)


def test_demo_stage_writes_what_the_cost_model_reads(
    ray_cluster, tmp_path, smollm2_cache, monkeypatch
):
    """configs/local.yaml profiles SmolLM2-135M-Instruct: real answers, graded for real."""
    from localroute.grading import extract
    from pipelines.profile import demo_stage

    monkeypatch.setenv("LOCALROUTE_CACHE", str(smollm2_cache))  # resolved in the driver

    (tmp_path / "data").symlink_to(SHIPPED_DIR, target_is_directory=True)
    cfg = load_config(REPO / "configs" / "local.yaml")
    result = demo_stage(cfg, tmp_path)
    json.dumps(result)  # a plain summary
    table = read_table(tmp_path / "profile", "outcomes")
    assert result["rows"] == table.num_rows == 24
    assert set(table["source"].to_pylist()) == {"routellm_gsm8k", "routellm_mmlu"}
    assert result["median_latency_s"] > 0 and result["energy_provenance"] == ["estimated"]
    assert pc.all(pc.equal(table["provenance"], "measured")).as_py()
    assert set(table["model"].to_pylist()) == {"SmolLM2-135M-Instruct"}
    assert "at chance" in result["note"]
    # MMLU answers carry a choice letter (the prompt asks for it): >= 90% parsed.
    mmlu = [r for r in table.to_pylist() if r["source"] == "routellm_mmlu"]
    parsed = [extract.choice_letter(r["answer"], 4) is not None for r in mmlu]
    assert len(mmlu) == 12 and sum(parsed) >= 0.9 * len(mmlu), [r["answer"] for r in mmlu]
    assert all(r["error"] is None and r["answer"] for r in table.to_pylist())


def test_profile_configs_validate(tmp_path):
    cfg = load_config(REPO / "configs" / "profile-cluster.yaml")
    kinds = {p.name: p.placement.resolved_kind for p in cfg.profile.pools}
    assert len(kinds) >= 3 and "cpu" in kinds.values()
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile:\n  pools:\n    - {name: g, placement: {num_gpus: 1}}\n")
    with pytest.raises(ConfigError, match="profile.pools\\[0\\].placement.num_gpus"):
        load_config(bad)
    bad.write_text("profile:\n  pools:\n    - {name: g, engine: nope}\n")
    with pytest.raises(ConfigError, match="profile.pools\\[0\\].engine"):
        load_config(bad)
    # Engine options are checked against the engine before any actor starts.
    for options, fragment in [
        ("{max_batch_tokens: 0}", "max_batch_tokens must be an integer >= 1, got 0"),
        ("{batch: 4}", "unknown option(s) ['batch'] for engine 'transformers'"),
    ]:
        bad.write_text(f"profile:\n  pools:\n    - {{name: c, engine_options: {options}}}\n")
        with pytest.raises(ConfigError, match=re.escape(f"pools[0].engine_options: {fragment}")):
            load_config(bad)
    vllm = "profile:\n  pools:\n    - {name: g, engine: vllm, engine_options: {dtype: half}}\n"
    bad.write_text(vllm)  # vLLM forwards any keyword to its LLM: not refused here
    assert load_config(bad).profile.pools[0].engine_options == {"dtype": "half"}


class _AllOrNothing:
    """An engine like vLLM: one prompt past its context window fails the whole batch."""

    limit = 200

    def __init__(self):
        self.batches: list[int] = []

    def generate(self, requests):
        from localroute.engines import Generation

        self.batches.append(len(requests))
        long = [r for r in requests if len(r.messages[-1]["content"]) > self.limit]
        if long:
            raise ValueError(f"prompt is longer than the maximum model length {self.limit}")
        return [Generation(text=f"answer {r.messages[-1]['content']}") for r in requests]


def test_a_batch_failed_by_one_long_prompt_answers_the_rest():
    """Issue 12: an over-long prompt is one error row with its reason, not a failed batch."""
    from localroute.engines import GenerationRequest
    from pipelines.profile.worker import ProfileWorker

    worker = object.__new__(ProfileWorker)  # the batch logic alone, without an actor
    worker.engine = _AllOrNothing()
    prompts = ["q1", "word " * 100, "q3"]
    gens = worker._generate([GenerationRequest(_user(p)) for p in prompts])
    assert [g.text for g in gens] == ["answer q1", "", "answer q3"]
    assert [g.error is None for g in gens] == [True, False, True]
    assert "maximum model length" in gens[1].error
    assert worker.engine.batches == [3, 1, 1, 1]
    # A healthy batch runs once, as one batch.
    worker.engine = _AllOrNothing()
    assert [g.error for g in worker._generate([GenerationRequest(_user("a"))] * 4)] == [None] * 4
    assert worker.engine.batches == [4]


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


class _PackedEngine(_AllOrNothing):
    """An engine that packs a call into sub-batches of two (as the transformers engine packs by
    tokens): a sub-batch holding an over-long prompt fails, the others answer."""

    def generate(self, requests):
        from localroute.engines import Generation

        self.batches.append(len(requests))
        out = []
        for i in range(0, len(requests), 2):
            part = requests[i : i + 2]
            if any(len(r.messages[-1]["content"]) > self.limit for r in part):
                out += [Generation(text="", error="RuntimeError: sub-batch failed") for _ in part]
            else:
                out += [Generation(text=f"answer {r.messages[-1]['content']}") for r in part]
        return out


def test_only_the_requests_of_a_failed_sub_batch_run_again():
    from localroute.engines import GenerationRequest
    from pipelines.profile.worker import ProfileWorker

    worker = object.__new__(ProfileWorker)
    worker.engine = _PackedEngine()
    prompts = ["q1", "q2", "q3", "word " * 100, "q5"]
    gens = worker._generate([GenerationRequest(_user(p)) for p in prompts])
    assert [g.text for g in gens] == ["answer q1", "answer q2", "answer q3", "", "answer q5"]
    assert gens[3].error == "RuntimeError: sub-batch failed"
    assert worker.engine.batches == [5, 1, 1]  # q3 and the long prompt, alone
