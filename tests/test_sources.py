"""Loaders on the real files: row counts, joins on known rows, flags, nulls, schemas."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from localroute.data.build import read_table
from localroute.data.sources import GPT4, MIXTRAL, SOURCES, SOURCES_BY_NAME, model_size_b

pytestmark = pytest.mark.timeout(120)


def _rows(table, **eq):
    mask = None
    for key, value in eq.items():
        m = pc.equal(table[key], value)
        mask = m if mask is None else pc.and_(mask, m)
    return table.filter(mask).to_pylist()


def test_row_counts(data_build):
    q = read_table(data_build, "queries")
    o = read_table(data_build, "outcomes")
    count = lambda t, **eq: len(_rows(t, **eq))  # noqa: E731
    assert count(q, source="gsm8k", split="test") == 1319
    assert count(q, source="gsm8k", split="train") == 7473
    mmlu_ids = [i for i in q["query_id"].to_pylist() if i.startswith("mmlu:")]
    assert sum(i.startswith("mmlu:test:") for i in mmlu_ids) == 14042
    assert sum(i.startswith("mmlu:dev:") for i in mmlu_ids) == 285
    # 5 dev questions repeat test questions: they join the test split (no leakage).
    assert count(q, source="mmlu", split="test") == 14042 + 5
    assert count(q, source="mtbench101") == 1388
    assert count(q, source="mtbench") == 80
    assert count(q, source="arena_hard") == 1250
    assert count(q, source="sharegpt500") == 500
    for model in (MIXTRAL, GPT4):
        assert count(o, source="routellm_gsm8k", model=model) == 1319
        assert count(o, source="routellm_mmlu", model=model) == 14042
        assert count(o, source="routellm_mtbench", model=model) == 160  # 80 questions x 2 turns
    llm = _rows(o, source="llmrouter")
    assert len(llm) == (5608 + 500) * 9
    assert len({r["model"] for r in llm}) == 9
    assert count(q, source="llmrouter") == 5608 + 500


def test_published_accuracy_matches_sources_md(data_build):
    o = read_table(data_build, "outcomes", ["routellm_gsm8k", "routellm_mmlu"])
    mean = lambda **eq: sum(r["score"] for r in _rows(o, **eq)) / len(_rows(o, **eq))  # noqa: E731
    assert mean(source="routellm_gsm8k", model=MIXTRAL) == pytest.approx(0.638, abs=5e-4)
    assert mean(source="routellm_gsm8k", model=GPT4) == pytest.approx(0.857, abs=5e-4)
    assert mean(source="routellm_mmlu", model=MIXTRAL) == pytest.approx(0.681, abs=5e-4)
    assert mean(source="routellm_mmlu", model=GPT4) == pytest.approx(0.806, abs=5e-4)


def test_mmlu_join_gives_gold_answers(data_build):
    q = read_table(data_build, "queries", ["routellm_mmlu"])
    assert q["reference"].null_count == 0  # including the rows where pandas wrote "nan"
    (row,) = _rows(q, query_id="routellm_mmlu:abstract_algebra:0")
    # mmlu/test/abstract_algebra_test.csv line 2: choices 0,4,2,6, answer index 1
    assert row["reference"] == "B"
    assert row["choices"] == ["0", "4", "2", "6"]
    assert row["turns"][0]["content"].endswith("D. 6\nAnswer:")


def test_llmrouter_join_task_size_and_leaks(data_build):
    q = read_table(data_build, "queries", ["llmrouter"])
    (first,) = _rows(q, query_id="llmrouter:train:0")
    assert first["task"] == "agentverse-logicgrid"
    assert first["grading"] == "mc_letter" and first["reference"] == "C"
    assert first["choices"] == ["1", "2", "3"]
    assert len(set(q["task"].to_pylist())) == 14
    # 119 questions appear in both of LLMRouter's splits; the test split keeps every copy.
    assert len(_rows(q, split="test")) == 500 + 119
    models = read_table(data_build, "models", ["llmrouter"]).to_pylist()
    by_name = {m["model"]: m for m in models}
    assert by_name["llama-3.1-8b-instruct"]["size_b"] == 8.0
    assert by_name["llama-3.1-nemotron-51b-instruct"]["size_b"] == 51.0
    assert by_name["gemma-2-9b-it"]["input_usd_per_m"] == 0.1


def test_routerdc_pairs_small_models_with_gpt4(data_build):
    o = read_table(data_build, "outcomes", ["routerdc_gsm8k"])
    first = {r["model"]: r for r in _rows(o, query_id="routerdc_gsm8k:test:0")}
    # Janet's ducks: RouterDC's Mistral-7B got 8 of 10 samples right; RouteLLM's GPT-4 was right.
    assert first["mistralai/Mistral-7B-v0.1"]["score"] == pytest.approx(0.8)
    assert first["mistralai/Mistral-7B-v0.1"]["model_size_b"] == 7.0
    assert first[GPT4]["correct"] is True
    assert len(_rows(o, model=GPT4)) == 1319  # every GSM8K test question joined
    mmlu = read_table(data_build, "outcomes", ["routerdc_mmlu"])
    assert len(_rows(mmlu, model=GPT4)) >= 6200


def test_mtbench_judge_scores_normalised_with_raw_kept(data_build):
    o = read_table(data_build, "outcomes", ["routellm_mtbench"])
    assert pc.min(o["score_raw"]).as_py() >= 1 and pc.max(o["score_raw"]).as_py() <= 10
    for row in o.to_pylist():
        assert row["score"] == pytest.approx((row["score_raw"] - 1) / 9)
        assert row["correct"] is None  # judge scores are not pass/fail
    q = read_table(data_build, "queries", ["routellm_mtbench"])
    assert set(q["n_user_turns"].to_pylist()) == {2}


def test_contaminated_prompts_flagged(data_build):
    q = read_table(data_build, "queries", ["routellm_gsm8k", "routellm_mmlu", "routellm_mtbench"])
    flagged = {s: len(_rows(q, source=s, contaminated=True)) for s in set(q["source"].to_pylist())}
    assert flagged == {"routellm_gsm8k": 12, "routellm_mmlu": 5, "routellm_mtbench": 8}


def test_multi_turn_queries(data_build):
    q = read_table(data_build, "queries", ["mtbench101", "mtbench"])
    dialogues = _rows(q, source="mtbench101")
    assert min(r["n_user_turns"] for r in dialogues) == 2
    assert max(r["n_user_turns"] for r in dialogues) == 7
    assert dialogues[0]["turns"][1]["role"] == "assistant"
    o = read_table(data_build, "outcomes", ["mtbench"])
    assert len({r["model"] for r in o.to_pylist()}) >= 30
    assert set(o["turn"].to_pylist()) == {1, 2}


def test_missing_measurements_are_null_not_zero(data_build):
    o = read_table(data_build, "outcomes")
    for column in ("ttft_s", "tpot_s", "latency_s", "energy_j", "tokens_in", "tokens_out"):
        assert o[column].null_count == o.num_rows, column
    assert set(o["provenance"].to_pylist()) == {"published"}
    assert set(o["energy_provenance"].to_pylist()) == {"absent"}


def test_every_source_is_complete_and_its_tables_join(data_build):
    """read_table already checks each file's schema; this checks what a schema cannot: every
    source was built, ids are unique and its own, and every outcome joins to one of its queries
    (on a turn the query has) and to a model of its catalogue, under a known run_id."""
    routellm_run = SOURCES_BY_NAME["routellm_gsm8k"].run_id
    for s in SOURCES:
        q = read_table(data_build, "queries", [s.name])
        o = read_table(data_build, "outcomes", [s.name])
        models = {m["model"] for m in read_table(data_build, "models", [s.name]).to_pylist()}
        assert q.num_rows > 0, s.name
        ids = q["query_id"].to_pylist()
        assert len(set(ids)) == len(ids), f"{s.name}: repeated query ids"
        assert all(i.startswith(f"{s.name}:") for i in ids), s.name
        assert set(q["source"].to_pylist()) == {s.name}
        assert set(q["split"].to_pylist()) <= {"train", "val", "dev", "test"}, s.name
        turns = dict(zip(ids, q["n_user_turns"].to_pylist(), strict=True))
        keys = list(zip(*(o[c].to_pylist() for c in ("query_id", "turn", "model")), strict=True))
        assert len(set(keys)) == len(keys), f"{s.name}: repeated (query, turn, model) outcomes"
        for qid, turn, model in keys:
            assert 1 <= turn <= turns[qid], (s.name, qid, turn)  # KeyError: an orphan outcome
            assert model in models, (s.name, model)
        assert set(o["source"].to_pylist()) <= {s.name}
        # RouterDC rows carry RouteLLM's outcomes for the questions both published.
        assert set(o["run_id"].to_pylist()) <= {s.run_id, routellm_run}, s.name


def test_model_sizes():
    assert model_size_b(MIXTRAL) == 46.7
    assert model_size_b(GPT4) is None
    assert model_size_b("meta-llama/Meta-Llama-3-8B") == 8.0
    assert model_size_b("qwen2.5-7b-instruct") == 7.0
    assert model_size_b("gpt-3.5-turbo") is None
