"""`localroute evaluate` end to end on the shipped RouteLLM/LLMRouter/MT-Bench build; bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import LIGHT_EVALUATE as LIGHT

from cli.config import load_config
from cli.main import main
from localroute.data.schema import OUTCOME_SCHEMA, to_table
from localroute.errors import ConfigError

pytestmark = pytest.mark.timeout(240)


def _config(tmp_path: Path, artifact: Path | str | None, extra: str = "") -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(LIGHT.format(artifact=artifact or "null", extra=extra))
    return path


def test_metrics_hold_the_three_seed_experiments(evaluated: Path) -> None:
    m = json.loads((evaluated / "metrics.json").read_text())
    for key in ("fusion_mmlu", "fusion_gsm8k", "fusion_multiturn", "savings"):
        assert key in m
    pair = m["fusion_mmlu"]["pairs"]["mixtral-vs-gpt4"]
    assert pair["n_test"] == 300 and set(pair["routers"]) == {"learned", "random", "oracle"}
    assert pair["routers"]["learned"]["router"] == "task-prior"
    # RouterDC is evaluation-only and not shipped: skipped with a note, not a failure
    assert any("routerdc_mmlu" in n for n in m["fusion_mmlu"]["skipped"])
    assert "llama3-8b-vs-gpt4" not in m["fusion_gsm8k"]["pairs"]
    # the curve at alpha 0 runs from all-cloud to all-local, monotonically
    c = pair["routers"]["random"]["curves"]["0"]
    assert c["cloud_share"][0] == 1.0 and c["cloud_share"][-1] == 0.0
    assert np.all(np.diff(c["cloud_share"]) <= 0)
    base = pair["baselines"]
    assert c["quality"][0] == pytest.approx(base["cloud_only"]["quality"])
    assert c["quality"][-1] == pytest.approx(base["local_only"]["quality"])
    # the oracle needs no more cloud than random to reach the same accuracy
    for t_or, t_rd in zip(
        pair["routers"]["oracle"]["at_target"], pair["routers"]["random"]["at_target"], strict=True
    ):
        assert t_or["min_cloud_share"]["cloud_share"] <= t_rd["min_cloud_share"]["cloud_share"]
    # every latency and energy figure carries a provenance; absent figures are null
    for side in pair["sides"].values():
        for name, f in side["figures"].items():
            assert f["provenance"] in {
                "measured",
                "calibrated",
                "published",
                "estimated",
                "assumed",
                "absent",
            }
            assert (f["value"] is None) == (f["provenance"] == "absent"), name
        assert side["figures"]["decode_s_per_token"]["value"] is not None


def test_savings_table_identities(evaluated: Path) -> None:
    rows = json.loads((evaluated / "metrics.json").read_text())["savings"]["rows"]
    sources = {r["source"] for r in rows}
    assert {"routellm_mmlu", "routellm_gsm8k", "llmrouter"} <= sources
    for r in rows:
        if r["policy"] == "cloud-only":
            assert all(v == 0.0 for v in r["savings_vs_cloud_only"].values() if v is not None)
            assert r["local_share"] == 0.0
        if r["reached"] and r["policy"] != "local-only":
            assert r["quality"] >= r["target_quality"] - 1e-9


def test_mtbench_replay_with_and_without_context(evaluated: Path) -> None:
    mt = json.loads((evaluated / "metrics.json").read_text())["fusion_multiturn"]
    assert mt["n_conversations"] > 50 and mt["n_turns"] == 2 * mt["n_conversations"]
    for r in mt["routers"].values():
        for mode in ("context_aware", "context_agnostic"):
            cols = r[mode]
            assert cols["switches"][0] == 0 and cols["switches"][-1] == 0  # all cloud, all local
            assert max(cols["switches"]) > 0  # switching happens in between and is priced
    assert mt["baselines"]["cloud_only"]["score_raw"] > mt["baselines"]["local_only"]["score_raw"]


def test_report_is_self_contained_with_provenance(evaluated: Path) -> None:
    html = (evaluated / "report.html").read_text()
    for key in ("fusion_mmlu", "fusion_gsm8k", "fusion_multiturn", "savings"):
        assert f"id='{key}'" in html
    srcs = re.findall(r'src="([^"]+)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http-equiv" not in html and "<script" not in html
    assert re.search(r'class="prov-(calibrated|published)"', html)
    assert "decode_s_per_token" in html and "energy_per_output_token_j" in html


def test_measured_rows_drive_the_local_side(
    small_build: Path, artifact: Path, tmp_path: Path
) -> None:
    from pipelines.evaluate import demo_stage

    rows = [
        {
            "query_id": f"q{i}",
            "source": "profile",
            "turn": 1,
            "model": "tiny-qwen2-test",
            "hardware": "cpu: test box",
            "tokens_in": 40,
            "tokens_out": 16,
            "ttft_s": 0.08,
            "tpot_s": 0.02,
            "latency_s": 0.4,
            "latency_provenance": "measured",
            "energy_provenance": "absent",
            "provenance": "measured",
            "run_id": "t",
        }
        for i in range(3)
    ]
    prof = tmp_path / "profile"
    prof.mkdir()
    import pyarrow.parquet as pq

    pq.write_table(to_table(rows, OUTCOME_SCHEMA, "t"), prof / "rows.parquet")
    out = tmp_path / "demo"
    out.mkdir()
    (out / "data").symlink_to(small_build)
    cfg = load_config(_config(tmp_path, None))
    res = demo_stage(cfg, out, prof, artifact=artifact)
    m = json.loads(Path(res["metrics"]).read_text())
    assert (
        m["measured"]["model"] == "tiny-qwen2-test" and m["measured"]["hardware"] == "cpu: test box"
    )
    # A measured figure applies only to the model measured: Mixtral keeps its calibrated
    # stand-in, never the tiny model's CPU per-token times (issue 12).
    local = m["fusion_gsm8k"]["pairs"]["mixtral-vs-gpt4"]["sides"]["local"]["figures"]
    for name in ("prefill_s_per_token", "decode_s_per_token", "energy_per_output_token_j"):
        assert local[name]["provenance"] != "measured", (name, local[name])
        assert "tiny-qwen2-test" not in (local[name]["source"] or ""), (name, local[name])
    assert "tiny-qwen2-test on cpu: test box" in Path(res["report"]).read_text()


def test_bad_input_names_the_field(tmp_path: Path, small_build: Path, artifact: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"evaluate\.link: unknown link profile 'moon'; known: 5g"
    ):
        load_config(_config(tmp_path, artifact, "  link: moon\n"))
    links = tmp_path / "links.yaml"
    links.write_text(
        "links:\n  bad:\n    bandwidth_tokens_s: -5\n    overhead_s: 0.01\n"
        "    provenance: estimated\n    source: test\n"
    )
    with pytest.raises(ConfigError, match=r"links\.bad\.bandwidth_tokens_s must be > 0"):
        load_config(
            _config(
                tmp_path, artifact, f"  links_file: {links}\n  link: bad\n  table1_preset: null\n"
            )
        )
    with pytest.raises(ConfigError, match=r"evaluate\.mmlu\[0\]\.alpha must be"):
        load_config(
            _config(
                tmp_path,
                artifact,
                "  mmlu: [{name: x, source: routellm_mmlu, local: a, cloud: b, alpha: -1}]\n",
            )
        )
    with pytest.raises(ConfigError, match=r"evaluate\.routers\[0\]: unknown router"):
        load_config(_write(tmp_path, "evaluate:\n  routers: [nope]\n"))
    # a model with no latency source: no measured rows, no ML.ENERGY, no Table I fallback
    cfg = _write(
        tmp_path,
        LIGHT.format(artifact=artifact, extra="  mlenergy_dir: none\n  table1_preset: null\n"),
    )
    with pytest.raises(ConfigError, match=r"no latency source for local model 'mistralai/Mixtral"):
        from pipelines.evaluate import run_evaluate

        run_evaluate(load_config(cfg), small_build, tmp_path / "o", log=lambda *_: None)
    rc = main(
        ["evaluate", "--config", str(cfg), "--data", str(small_build), "--out", str(tmp_path / "o")]
    )
    assert rc == 2


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg2.yaml"
    path.write_text(text)
    return path


def test_response_length_order_is_configurable(
    tmp_path: Path, small_build: Path, artifact: Path
) -> None:
    from pipelines.evaluate import run_evaluate

    with pytest.raises(ConfigError, match=r"evaluate\.response_lengths\[0\] must be"):
        load_config(_write(tmp_path, "evaluate:\n  response_lengths: [guess]\n"))
    cfg = load_config(
        _config(tmp_path, artifact, "  response_lengths: [config]\n  max_test_rows: 50\n")
    )
    m = run_evaluate(cfg, small_build, tmp_path / "o", log=lambda *_: None)
    sides = m["fusion_mmlu"]["pairs"]["mixtral-vs-gpt4"]["sides"]
    # seed 001 Table II (MMLU): 1254.4 and 4567.9 tokens, from the config preset
    assert sides["local"]["figures"]["mean_response_tokens"]["value"] == 1254.4
    assert sides["cloud"]["figures"]["mean_response_tokens"]["value"] == 4567.9
    assert "paper-table1" in sides["cloud"]["figures"]["mean_response_tokens"]["source"]


def test_the_learned_router_is_the_trained_artifact(evaluated: Path, artifact: Path) -> None:
    """evaluate loads the artifact `localroute train` wrote and names it; it fits no learned
    router of its own (its scores on the trained pair equal the artifact's)."""
    from localroute.routers import load_router

    m = json.loads((evaluated / "metrics.json").read_text())
    spec = json.loads((artifact / "router.json").read_text())
    art = m["artifact"]
    assert art["path"] == str(artifact.resolve()) and art["router"] == "task-prior"
    # router.json holds the fingerprint at the top level or in info (older artifacts: neither)
    assert art["fingerprint"] == (spec.get("fingerprint") or spec["info"].get("fingerprint"))
    assert art["trained_on"]["source"] == "routellm_mmlu"
    assert m["routers"]["learned"] == "task-prior"
    for key in ("fusion_mmlu", "fusion_gsm8k"):
        for pair in m[key]["pairs"].values():
            assert pair["routers"]["learned"]["router"] == "task-prior"
    html = (evaluated / "report.html").read_text()
    assert str(artifact.resolve()) in html and "every pair is scored" in html
    if art["fingerprint"]:
        assert art["fingerprint"] in html
    # the artifact's own prior is what scored the learned curves: a task-prior refitted on the
    # evaluate split (max_train_rows: 400) would give a different table
    router = load_router(artifact)
    assert router.info.get("n_train", 0) > 400


def test_no_artifact_is_one_clear_error(tmp_path: Path, small_build: Path) -> None:
    from pipelines.evaluate import run_evaluate

    cfg = load_config(_config(tmp_path, None))
    with pytest.raises(ConfigError, match=r"evaluate\.router_artifact is not set"):
        run_evaluate(cfg, small_build, tmp_path / "o", log=lambda *_: None)
    bad = load_config(_config(tmp_path, tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"evaluate\.router_artifact: .*no router\.json"):
        run_evaluate(bad, small_build, tmp_path / "o", log=lambda *_: None)
    # evaluate fits baselines only: a learned router by name is refused, pointing at the artifact
    with pytest.raises(ConfigError, match=r"evaluate\.routers\[0\]: 'mlp' is a learned router"):
        load_config(_write(tmp_path, "evaluate:\n  routers: [mlp, random]\n"))


def test_report_opens_on_a_summary_equal_to_metrics(evaluated: Path, tmp_path: Path) -> None:
    """The at-a-glance table is metrics.json's summary, whose lines are the experiments' own
    baselines and matched points; `write_report(metrics.json)` rebuilds the same report."""
    from localroute.report import write_report

    m = json.loads((evaluated / "metrics.json").read_text())
    html = (evaluated / "report.html").read_text()
    assert html.index("id='summary'") < html.index("id='fusion_mmlu'")
    rows = m["summary"]["rows"]
    pair = m["fusion_mmlu"]["pairs"]["mixtral-vs-gpt4"]
    mine = {r["policy"]: r for r in rows if r["pair"] == "fusion_mmlu/mixtral-vs-gpt4"}
    assert list(mine) == [
        "as deployed",
        "random at the deployed share",
        "oracle at the deployed share",
        "cloud-only",
        "local-only",
        "learned + fusion",
        "random + fusion",
        "oracle + fusion",
    ]
    # the first rows: the deployed operating point, replayed through the server's controller
    dep = pair["as_deployed"]
    assert dep["operating_point"]["alpha_from"] == "artifact"
    assert dep["operating_point"]["theta_from"] == "artifact"
    assert dep["transfer"] is False and pair["transfer"] is False  # trained on this pair
    share = mine["as deployed"]["cloud_share"]
    assert share == dep["cloud_share"] == dep["rows"]["as deployed"]["cloud_share"]
    assert mine["oracle at the deployed share"]["cloud_share"] == pytest.approx(share, abs=1 / 300)
    # at the same share, the oracle is at least as good as the deployed router, random no better
    assert mine["oracle at the deployed share"]["quality"] >= mine["as deployed"]["quality"]
    lo, hi = mine["local-only"]["quality"], mine["cloud-only"]["quality"]
    rand = mine["random at the deployed share"]["quality"]
    assert rand == pytest.approx(lo + share * (hi - lo))
    gsm = m["fusion_gsm8k"]["pairs"]
    assert all(p["transfer"] for p in gsm.values())  # an MMLU artifact on GSM8K: transfer
    for name in gsm:  # and the table says so where the pair is named
        assert f"<td>fusion_gsm8k/{name} (transfer)</td>" in html
    assert "<td>fusion_mmlu/mixtral-vs-gpt4</td>" in html  # the pair it was trained for
    for key in ("quality", "cloud_share", "latency_s", "energy_j", "cost_usd"):
        assert mine["cloud-only"][key] == pair["baselines"]["cloud_only"][key]
        assert mine["local-only"][key] == pair["baselines"]["local_only"][key]
        for r in ("learned", "random", "oracle"):
            point = pair["routers"][r]["matched"]["point"]
            assert mine[f"{r} + fusion"][key] == (point[key] if point else None)
    assert mine["oracle + fusion"]["reached"]
    assert mine["oracle + fusion"]["cloud_share"] <= mine["cloud-only"]["cloud_share"]
    target = pair["routers"]["learned"]["matched"]["quality_target"]
    assert target == pytest.approx(pair["baselines"]["cloud_only"]["quality"] - 0.01)
    for r in ("learned", "random", "oracle"):
        if mine[f"{r} + fusion"]["reached"]:
            assert mine[f"{r} + fusion"]["quality"] >= target - 1e-12
    # every number in the HTML summary equals metrics.json's
    cells = re.findall(
        r"<tr class=\w+ data-pair='([^']+)' data-policy='([^']+)'>(.*?)</tr>", html, re.S
    )
    assert len(cells) == len(rows)
    by_key = {(r["pair"], r["policy"]): r for r in rows}
    checked = 0
    for pair_name, policy, body in cells:
        r = by_key[(pair_name, policy)]
        for k, v in re.findall(r"data-k='(\w+)' data-v='([^']*)'", body):
            saved = k.removeprefix("saved_")
            want = r["savings_vs_cloud_only"][saved] if saved != k else r[k]
            assert (float(v) if v else None) == want, (pair_name, policy, k)
            checked += 1
    assert checked >= 5 * 8
    # the headline plot opens the report, and the per-figure provenance is folded away
    assert html.index("<img") < html.index("id='fusion_mmlu'")
    assert html.count("<img") >= 1 + 2 + 1 and "<details>" in html
    again = write_report(evaluated / "metrics.json", tmp_path / "again" / "report.html")
    assert again.read_text() == html


def test_each_pair_is_read_and_built_once(
    small_build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every experiment gets the same PairTable; a source's examples for a pair and its published
    answers are read from the outcome Parquet once a run."""
    import dataclasses
    from collections import Counter

    import localroute.routers.examples as examples
    from pipelines.evaluate import pairs as pairs_mod
    from pipelines.evaluate.context import make_context
    from pipelines.evaluate.experiments import all_experiments

    reads: Counter = Counter()
    real_examples, real_answers = examples.pair_examples, pairs_mod._AnswerWords.read.__func__

    def counted_examples(data_dir, source, local, cloud, *a, **k):
        reads["examples", source, local, cloud] += 1
        return real_examples(data_dir, source, local, cloud, *a, **k)

    def counted_answers(cls, ctx, source):
        reads["answers", source] += 1
        return real_answers(cls, ctx, source)

    monkeypatch.setattr(examples, "pair_examples", counted_examples)
    monkeypatch.setattr(pairs_mod._AnswerWords, "read", classmethod(counted_answers))
    ev = dataclasses.replace(
        load_config(_config(tmp_path, None)).evaluate, routers=["random", "oracle"]
    )
    ctx = make_context(ev, 7, small_build, None, lambda *_: None)
    tables = pairs_mod.PairTables(ctx)
    out = {x.key: x.run(tables, ctx) for x in all_experiments(ev)}
    assert reads and max(reads.values()) == 1, reads
    assert ("examples", "routellm_mmlu", ev.mmlu[0].local, ev.mmlu[0].cloud) in reads
    spec = ev.mmlu[0]
    assert tables.single_turn(spec, "a") is tables.single_turn(spec, "b")
    assert out["fusion_mmlu"]["pairs"][spec.name]["n_test"] == 300
    assert {r["source"] for r in out["savings"]["rows"]} >= {"routellm_mmlu", "llmrouter"}
    assert "learned" not in out["fusion_multiturn"]["routers"]


def test_measured_model_gets_its_own_pair_against_published_gpt4(
    small_build: Path, artifact: Path, tmp_path: Path
) -> None:
    """`--measured` rows of a model run here on RouteLLM queries: a pair whose local side is
    entirely that model (its scores, its measured per-token times) against gpt-4-1106's
    published outcomes on the same queries, and the report says what its quality is (issue 12)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from localroute.data.build import read_table

    q = read_table(small_build, "queries", ["routellm_mmlu"])
    test = q.filter(pc.equal(q["split"], "test"))
    test_ids = test["query_id"].to_pylist()
    rows = [
        {
            "query_id": qid,
            "source": "routellm_mmlu",
            "turn": 1,
            "model": "SmolLM2-135M-Instruct",
            "hardware": "cpu: test box",
            "tokens_in": 60,
            "tokens_out": 4,
            "ttft_s": 0.3,
            "tpot_s": 0.05,
            "latency_s": 0.5,
            "latency_provenance": "measured",
            "energy_j": 0.8,  # the estimated meter's figure: a TDP share x CPU time
            "energy_provenance": "estimated",
            "score": float(i % 4 == 0),  # a chance-level answerer
            "provenance": "measured",
            "run_id": "t",
        }
        for i, qid in enumerate(test_ids[:40])
    ]
    prof = tmp_path / "profile"
    prof.mkdir()
    pq.write_table(to_table(rows, OUTCOME_SCHEMA, "t"), prof / "rows.parquet")
    from pipelines.evaluate import run_evaluate

    cfg = load_config(_config(tmp_path, artifact))
    m = run_evaluate(cfg, small_build, tmp_path / "o", prof, log=lambda *_: None)
    pair = m["fusion_mmlu"]["pairs"]["smollm2-135m-instruct-measured-vs-gpt4"]
    assert pair["local"] == "SmolLM2-135M-Instruct" and pair["cloud"] == "gpt-4-1106-preview"
    assert pair["baselines"]["local_only"]["quality"] <= 0.35  # its own (chance-level) scores
    figures = pair["sides"]["local"]["figures"]
    assert figures["decode_s_per_token"]["provenance"] == "measured"
    energy = figures["energy_per_output_token_j"]  # its own rows' estimate, labelled so
    assert energy["provenance"] == "estimated" and energy["value"] == pytest.approx(0.2)
    assert pair["sides"]["cloud"]["figures"]["decode_s_per_token"]["provenance"] != "measured"
    assert any("SmolLM2-135M-Instruct was measured on this machine" in n for n in m["notes"])
    assert "chance on four choices" in (tmp_path / "o" / "report.html").read_text()
