"""Per-query accounting, side resolution with provenance, ML.ENERGY calibration, measured rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from localroute.core.accounting import (
    SideOutcome,
    accuracy_per_joule,
    resolve_side,
    savings,
    side_outcome,
    totals,
)
from localroute.core.measured import load_measured
from localroute.core.mlenergy import MlEnergy
from localroute.core.prices import load_prices
from localroute.core.profiles import get_preset, load_latency_presets
from localroute.core.sides import CLOUD, LOCAL, Figure
from localroute.data.schema import OUTCOME_SCHEMA, to_table
from localroute.errors import ConfigError

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parents[1]


def _mlenergy(tmp_path: Path) -> MlEnergy:
    """A two-model leaderboard shaped like ml-energy/leaderboard's public/data/models files."""
    models = tmp_path / "mlenergy" / "models"
    models.mkdir(parents=True)
    for mid, size, cfgs in (
        ("org/Small-8B", 8.0, [(1, 8, 5.0, 0.4, 400.0), (1, 64, 9.0, 0.1, 400.0)]),
        ("org/Big-400B", 400.0, [(8, 8, 30.0, 20.0, 350.0), (4, 8, 40.0, 12.0, 350.0)]),
    ):
        doc = {
            "model_id": mid,
            "task": "lm-arena-chat",
            "total_params_billions": size,
            "activated_params_billions": size,
            "architecture": "Dense Transformer",
            "configurations": [
                {
                    "gpu_model": "B200",
                    "num_gpus": g,
                    "max_num_seqs": s,
                    "median_itl_ms": itl,
                    "energy_per_token_joules": e,
                    "avg_output_len": out,
                }
                for g, s, itl, e, out in cfgs
            ],
        }
        (models / f"{mid.replace('/', '__')}__lm-arena-chat.json").write_text(json.dumps(doc))
    return MlEnergy(tmp_path / "mlenergy")


def test_calibration_picks_fewest_gpus_then_batch(tmp_path: Path) -> None:
    ml = _mlenergy(tmp_path)
    small = ml.calibrate("org/Small-8B", max_num_seqs=8)
    assert (small.s_per_token, small.energy_per_output_token_j) == (0.005, 0.4)
    assert ml.calibrate("org/Small-8B", max_num_seqs=64).s_per_token == 0.009
    big = ml.calibrate("org/Big-400B")
    assert (big.num_gpus, big.s_per_token, big.energy_per_output_token_j) == (4, 0.04, 12.0)
    assert "org/Big-400B on 4xB200" in big.source
    assert ml.find("other/SMALL-8b") == "org/Small-8B" and ml.find("org/Small-9B") is None
    assert ml.nearest_by_size(7.0) == "org/Small-8B" and ml.nearest_by_size(300) == "org/Big-400B"
    with pytest.raises(ConfigError, match="no ML.ENERGY entry"):
        ml.calibrate("org/None")


def test_real_mlenergy_llama_8b(shared_data: Path) -> None:
    ml = MlEnergy(shared_data / "mlenergy")
    c = ml.calibrate("meta-llama/Llama-3.1-8B-Instruct")
    doc = json.loads(
        (
            shared_data / "mlenergy/models/meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json"
        ).read_text()
    )
    want = min(
        doc["configurations"], key=lambda x: (x["num_gpus"], abs(math.log(x["max_num_seqs"] / 8)))
    )
    assert c.s_per_token == pytest.approx(want["median_itl_ms"] / 1e3)
    assert c.energy_per_output_token_j == pytest.approx(want["energy_per_token_joules"])


def test_resolve_side_precedence_and_provenance(tmp_path: Path) -> None:
    ml = _mlenergy(tmp_path)
    table1 = get_preset("paper-table1", load_latency_presets(REPO / "configs/links.yaml"))
    cat = {
        "loc-7b": {"size_b": 7.0},
        "cloud-x": {"size_b": 390.0, "input_usd_per_m": 1.0, "output_usd_per_m": 2.0},
    }
    # calibrated by nearest size
    s = resolve_side("local", "loc-7b", mlenergy=ml, catalogue=cat)
    assert s.decode_s_per_token.provenance == "calibrated" and s.decode_s_per_token.value == 0.005
    assert s.energy_per_output_token_j.value == 0.4 and s.active_params_b.value == 7.0
    assert s.mean_response_tokens.provenance == "calibrated"
    # no TTFT in ML.ENERGY: prefill uses the decode gamma, and says so
    assert s.prefill_s_per_token.value == 0.005 and "no TTFT" in s.prefill_s_per_token.source
    # config fallback (Table I), no energy
    s = resolve_side("local", "unknown", table1=table1)
    assert s.decode_s_per_token.to_dict()["provenance"] == "published"
    assert s.decode_s_per_token.value == 0.04 and s.energy_per_output_token_j.value is None
    # cloud prices from the catalogue, published response length wins over calibrated
    resp = Figure(120.0, "published", "answers")
    s = resolve_side("cloud", "cloud-x", mlenergy=ml, catalogue=cat, response_tokens=resp)
    assert s.decode_s_per_token.value == 0.04 and s.input_usd_per_m.value == 1.0
    assert s.mean_response_tokens.value == 120.0
    # nothing at all: a clear error naming the model
    s = resolve_side("cloud", "mystery-model")
    with pytest.raises(ConfigError, match="no latency source for cloud model 'mystery-model'"):
        s.latency()


def test_measured_rows_win_for_the_local_side(tmp_path: Path) -> None:
    rows = [
        {
            "query_id": f"q{i}",
            "source": "profile",
            "turn": 1,
            "model": "tiny-qwen2",
            "hardware": "cpu-2core",
            "tokens_in": 100,
            "tokens_out": 50,
            "ttft_s": 0.2,
            "tpot_s": 0.01 + 0.001 * i,
            "latency_s": 0.7,
            "latency_provenance": "measured",
            "energy_j": None,
            "energy_provenance": "absent",
            "provenance": "measured",
            "run_id": "r",
        }
        for i in range(5)
    ]
    rows.append({**rows[0], "query_id": "pub", "provenance": "published", "tpot_s": 9.0})
    d = tmp_path / "profile"
    d.mkdir()
    pq.write_table(to_table(rows, OUTCOME_SCHEMA, "test"), d / "part-0.parquet")
    m = load_measured(d)
    assert m is not None and (m.model, m.hardware, m.n_rows) == ("tiny-qwen2", "cpu-2core", 5)
    assert m.decode_s_per_token == pytest.approx(0.012) and m.prefill_s_per_token == pytest.approx(
        0.002
    )
    assert m.energy_per_output_token_j is None  # energy not metered: stays absent
    ml = _mlenergy(tmp_path)
    s = resolve_side(
        "local", "tiny-qwen2", measured=m, mlenergy=ml, catalogue={"tiny-qwen2": {"size_b": 7.0}}
    )
    assert (
        s.decode_s_per_token.provenance == "measured" and "cpu-2core" in s.decode_s_per_token.source
    )
    assert s.prefill_s_per_token.provenance == "measured"
    assert s.energy_per_output_token_j.provenance == "calibrated"  # measured has no energy
    # The same model under its hub id is still the model measured.
    hub = resolve_side("local", "Org/Tiny_Qwen2", measured=m, mlenergy=ml)
    assert hub.decode_s_per_token.provenance == "measured"
    cloud = resolve_side(
        "cloud", "tiny-qwen2", measured=m, mlenergy=ml, catalogue={"tiny-qwen2": {"size_b": 7.0}}
    )
    assert cloud.decode_s_per_token.provenance == "calibrated"  # measured rows are the local side's
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_measured(empty) is None
    with pytest.raises(ConfigError, match="evaluate.measured"):
        load_measured(tmp_path / "missing")


def _outcomes(n: int = 4):
    z = np.zeros(n)
    local = SideOutcome(np.array([1.0, 0, 1, 0]), z + 1, z + 10, z + 100, z + 0.001, z, z)
    cloud = SideOutcome(np.array([1.0, 1, 1, 1]), z + 3, z + 50, z + 1000, z + 0.01, z, z)
    return local, cloud


def test_savings_identities() -> None:
    local, cloud = _outcomes()
    cloud_only = totals(np.full(4, CLOUD), local, cloud)
    local_only = totals(np.full(4, LOCAL), local, cloud)
    assert all(v == 0.0 for v in savings(cloud_only, cloud_only).values())  # cloud-only saves 0%
    s = savings(local_only, cloud_only)
    assert s["energy_j"] == pytest.approx(1 - 10 / 50) and s["flops"] == pytest.approx(0.9)
    assert s["latency_s"] == pytest.approx(1 - 1 / 3) and s["cost_usd"] == pytest.approx(0.9)
    half = totals(np.array([LOCAL, LOCAL, CLOUD, CLOUD]), local, cloud)
    assert half["quality"] == pytest.approx(0.75) and half["cloud_share"] == 0.5
    assert half["energy_j"] == pytest.approx(30.0)
    assert savings(half, {**cloud_only, "energy_j": math.nan})["energy_j"] is None  # unknown, not 0
    assert accuracy_per_joule(0.8, 40.0) == pytest.approx(0.02)
    assert accuracy_per_joule(0.8, math.nan) is None


def test_side_outcome_by_hand() -> None:
    local = resolve_side("local", "m")
    local = local.__class__(
        **{
            **local.__dict__,
            "energy_per_output_token_j": Figure(0.5, "calibrated", "x"),
            "active_params_b": Figure(8.0, "published", "x"),
            "electricity_usd_per_kwh": Figure(0.18, "estimated", "x"),
        }
    )
    o = side_outcome(local, [1.0, 0.0], [2.0, 3.0], [100, 10], [200, 20])
    assert o.energy_j.tolist() == [100.0, 10.0]  # J/token x output tokens
    assert o.flops[0] == pytest.approx(2 * 8e9 * 300)
    assert o.cost_usd[0] == pytest.approx(100 / 3.6e6 * 0.18)
    cloud = local.__class__(
        **{
            **local.__dict__,
            "role": "cloud",
            "input_usd_per_m": Figure(10.0, "published", "p"),
            "output_usd_per_m": Figure(30.0, "published", "p"),
        }
    )
    o = side_outcome(cloud, [1.0], [2.0], [1000], [500])
    assert o.cost_usd[0] == pytest.approx((1000 * 10 + 500 * 30) / 1e6)
    absent = side_outcome(resolve_side("cloud", "m"), [1.0], [1.0], [1], [1])
    assert (
        np.isnan(absent.energy_j[0]) and np.isnan(absent.flops[0]) and np.isnan(absent.cost_usd[0])
    )


def test_prices_file_loads_and_errors_name_the_field(tmp_path: Path) -> None:
    p = load_prices(REPO / "configs/prices.yaml")
    assert p.get("gpt-4-1106-preview", "output_usd_per_m").value == 30.0
    # one provenance vocabulary: a stated assumption is an estimate
    assert p.get("gpt-4-1106-preview", "active_params_b").provenance == "estimated"
    bad = tmp_path / "p.yaml"
    bad.write_text("models:\n  m:\n    input_usd_per_m: -1\n    price_provenance: published\n")
    with pytest.raises(ConfigError, match=r"models\.m\.input_usd_per_m must be >= 0, got -1"):
        load_prices(bad)
    bad.write_text("models:\n  m:\n    input_usd_per_m: .nan\n    price_provenance: published\n")
    with pytest.raises(ConfigError, match=r"models\.m\.input_usd_per_m must be a number, got NaN"):
        load_prices(bad)
    bad.write_text("models:\n  m:\n    input_usd_per_m: 1\n    price_provenance: guessed\n")
    with pytest.raises(ConfigError, match=r"models\.m\.price_provenance"):
        load_prices(bad)
    bad.write_text("electricty: {}\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_prices(bad)
    with pytest.raises(ValueError):
        Figure(None, "measured")  # an absent value cannot claim a provenance
    assert Figure(None, "absent").to_dict()["value"] is None
    _ = pa  # pyarrow is used through to_table


def test_a_measured_figure_never_stands_in_for_another_model(tmp_path: Path) -> None:
    """Issue 12: the demo's report gave Mixtral-8x7B the tiny random model's CPU per-token times.
    Measured rows of one model apply to that model only; any other local side keeps its
    calibrated stand-in, and no figure of it cites the measured rows."""
    row = {
        "query_id": "q",
        "source": "profile",
        "turn": 1,
        "model": "SmolLM2-135M-Instruct",
        "hardware": "cpu:x86_64",
        "tokens_in": 100,
        "tokens_out": 20,
        "ttft_s": 0.5,
        "tpot_s": 0.05,
        "latency_s": 1.5,
        "latency_provenance": "measured",
        "energy_j": 2.0,
        "energy_provenance": "measured",
        "provenance": "measured",
        "run_id": "r",
    }
    d = tmp_path / "profile"
    d.mkdir()
    pq.write_table(to_table([row], OUTCOME_SCHEMA, "test"), d / "part-0.parquet")
    m = load_measured(d)
    ml = _mlenergy(tmp_path)
    mixtral = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    other = resolve_side(
        "local", mixtral, measured=m, mlenergy=ml, catalogue={mixtral: {"size_b": 46.7}}
    )
    assert other.decode_s_per_token.provenance == "calibrated"
    figures = other.figures()
    for name in ("prefill_s_per_token", "decode_s_per_token", "energy_per_output_token_j"):
        fig = figures[name]
        assert fig["provenance"] != "measured", (name, fig)
        assert "SmolLM2" not in (fig["source"] or ""), (name, fig)
    assert any("not applied" in n for n in other.notes)
    own = resolve_side("local", "SmolLM2-135M-Instruct", measured=m, mlenergy=ml)
    assert own.decode_s_per_token.value == pytest.approx(0.05)
    assert own.decode_s_per_token.provenance == "measured"
    assert own.energy_per_output_token_j.provenance == "measured"
    # Rows whose energy the estimated meter gave (a TDP share x CPU time, as on this CPU): the
    # measured model's own energy figure, labelled estimated; still never another model's.
    estimated = {**row, "energy_j": 3.0, "energy_provenance": "estimated"}
    pq.write_table(to_table([estimated], OUTCOME_SCHEMA, "test"), d / "part-0.parquet")
    m = load_measured(d)
    assert (m.energy_per_output_token_j, m.energy_provenance) == (pytest.approx(0.15), "estimated")
    own = resolve_side("local", "SmolLM2-135M-Instruct", measured=m, mlenergy=ml)
    assert own.energy_per_output_token_j.provenance == "estimated"
    assert "estimated energy" in own.energy_per_output_token_j.source
    other = resolve_side(
        "local", mixtral, measured=m, mlenergy=ml, catalogue={mixtral: {"size_b": 46.7}}
    )
    assert other.energy_per_output_token_j.provenance == "calibrated"
