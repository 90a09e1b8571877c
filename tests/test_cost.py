"""Seed 001's cost model: every equation against Table I values worked by hand.

Table I: gamma_s = 0.04 s/token, gamma_e = 0.02 s/token, B = 2e7 tokens/s, delta = 0.02 s,
alpha = 0.05 (GSM8K). Table II (GSM8K): Lr_s = 136.3, Lr_e = 460.1 tokens. tau_r = 0 unless
stated. The arithmetic behind each expected value is written next to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localroute.core import accounting, conversation, latency, sides
from localroute.core import policy as fusion
from localroute.core import profiles as yaml_profiles
from localroute.core.conversation import TurnView
from localroute.core.latency import LatencyModel
from localroute.core.sides import (
    CLOUD,
    LOCAL,
    CostConfigError,
    LinkProfile,
    SideLatency,
    UnknownProfileError,
)

pytestmark = pytest.mark.timeout(60)

LINKS_YAML = Path(__file__).resolve().parents[1] / "configs" / "links.yaml"

LINK = LinkProfile("paper-table1", bandwidth_tokens_s=2e7, overhead_s=0.02, provenance="published")
SLM = SideLatency("Qwen2.5-3B", s_per_token=0.04, mean_response_tokens=136.3)
LLM = SideLatency("QwQ-32B", s_per_token=0.02, mean_response_tokens=460.1)
MODEL = LatencyModel(local=SLM, cloud=LLM, link=LINK)

# Single turn, Lp = 100, Ct = 0:
#   T_s = 0.04*(0+100) + 0*(100) + 0.04*136.3 = 4 + 5.452                     = 9.452
#   T_e = 0.02*(0+100) + [(0+100)/2e7 + 0.02 + 460.1/2e7] + 0 + 0.02*460.1
#       = 2 + [0.000005 + 0.02 + 0.000023005] + 9.202                          = 11.222028005
#   T_e - T_s                                                                  = 1.770028005
T_S = 9.452
T_E = 11.222028005
GAP = 1.770028005


# --------------------------------------------------------------------------- units


def test_mbit_to_tokens_uses_bytes_per_token() -> None:
    # 100 Mbit/s = 1e8 bit/s; 4 bytes/token = 32 bit/token -> 1e8/32 = 3.125e6 tokens/s
    assert sides.mbit_s_to_tokens_s(100.0) == pytest.approx(3.125e6)
    # 8 bytes/token halves it
    assert sides.mbit_s_to_tokens_s(100.0, bytes_per_token=8.0) == pytest.approx(1.5625e6)
    # Table I's B = 2e7 tokens/s is 2e7 * 32 bit = 640 Mbit/s at 4 bytes/token
    assert sides.tokens_s_to_mbit_s(2e7) == pytest.approx(640.0)
    np.testing.assert_allclose(sides.mbit_s_to_tokens_s([8.0, np.nan]), [250_000.0, np.nan])
    with pytest.raises(ValueError, match="bytes_per_token"):
        sides.mbit_s_to_tokens_s(10.0, bytes_per_token=0.0)


# --------------------------------------------------------------------------- eqs. 1-8


def test_eq1_comp_switch_term_only_on_switch() -> None:
    # no switch: 0.04 * (0 + 100) = 4.0, whatever the context
    assert latency.t_comp(0.04, 100, latency.reprefill_tokens(200, False)) == pytest.approx(4.0)
    # switch with Ct = 200: 0.04 * (200 + 100) = 12.0
    assert latency.t_comp(0.04, 100, latency.reprefill_tokens(200, True)) == pytest.approx(12.0)
    # vectorised, int flags accepted
    np.testing.assert_allclose(latency.reprefill_tokens([200, 200, 0], [0, 1, 1]), [0, 200, 0])
    with pytest.raises(ValueError, match="switch"):
        latency.reprefill_tokens([200], [2])


def test_eq2_eq3_communication() -> None:
    np.testing.assert_array_equal(latency.t_comm_local([100, 5]), [0.0, 0.0])
    # (0+100)/2e7 + 0.02 + 460.1/2e7 = 0.000005 + 0.02 + 0.000023005 = 0.020028005
    assert latency.t_comm_cloud(100, 0, 460.1, LINK) == pytest.approx(0.020028005, rel=1e-12)
    # Ct = 200: (200+100)/2e7 = 0.000015 -> 0.020038005
    assert latency.t_comm_cloud(100, 200, 460.1, LINK) == pytest.approx(0.020038005, rel=1e-12)
    # asymmetric link: upload at 1e3 tokens/s -> 100/1e3 + 0.02 + 460.1/2e7 = 0.120023005
    asym = LinkProfile("asym", bandwidth_tokens_s=2e7, overhead_s=0.02, uplink_tokens_s=1e3)
    assert latency.t_comm_cloud(100, 0, 460.1, asym) == pytest.approx(0.120023005, rel=1e-12)


def test_eq4_eq5_router_and_generation() -> None:
    # tau_r = 0.001 s/token, Ct = 200, Lp = 100: 0.001 * 300 = 0.3
    assert latency.t_router(0.001, 100, 200) == pytest.approx(0.3)
    assert latency.t_gen(0.04, 136.3) == pytest.approx(5.452)  # 0.04 * 136.3
    assert latency.t_gen(0.02, 460.1) == pytest.approx(9.202)  # 0.02 * 460.1


def test_eq6_eq7_totals_match_table1_by_hand() -> None:
    assert latency.t_total_local(SLM, 100, 0) == pytest.approx(T_S, rel=1e-12)
    assert latency.t_total_cloud(LLM, LINK, 100, 0) == pytest.approx(T_E, rel=1e-12)
    assert MODEL.gap(100, 0) == pytest.approx(GAP, rel=1e-12)
    # tau_r = 0.001 adds 0.001*100 = 0.1 to both paths and cancels in the gap
    tl = latency.t_total_local(SLM, 100, 0, router_s_per_token=0.001)
    tc = latency.t_total_cloud(LLM, LINK, 100, 0, router_s_per_token=0.001)
    assert tl == pytest.approx(T_S + 0.1)
    assert tc == pytest.approx(T_E + 0.1)
    assert tc - tl == pytest.approx(GAP)


def test_switch_term_appears_only_when_model_changes() -> None:
    lp, ct = np.array([100.0, 100.0]), np.array([200.0, 200.0])
    stay, switch = np.array([False, False]), np.array([True, True])
    # local switch adds gamma_s * Ct = 0.04 * 200 = 8; cloud switch adds 0.02 * 200 = 4
    np.testing.assert_allclose(MODEL.t_local(lp, ct, switch) - MODEL.t_local(lp, ct, stay), 8.0)
    np.testing.assert_allclose(MODEL.t_cloud(lp, ct, switch) - MODEL.t_cloud(lp, ct, stay), 4.0)
    # with no context there is nothing to re-prefill: switching costs nothing
    assert MODEL.t_local(100, 0, True) == pytest.approx(MODEL.t_local(100, 0, False))
    # staying local with context: 0.04*100 + 0.04*136.3 = 9.452 (the context is cached)
    assert MODEL.t_local(100, 200, False) == pytest.approx(T_S)


def test_separate_prefill_and_decode_gamma() -> None:
    side = SideLatency("x", s_per_token=0.04, mean_response_tokens=136.3, prefill_s_per_token=1e-3)
    # prefill 0.001 * 100 = 0.1, decode keeps gamma 0.04 * 136.3 = 5.452 -> 5.552
    assert latency.t_total_local(side, 100) == pytest.approx(5.552)
    assert side.decode == 0.04 and side.prefill == 1e-3


def test_eq8_realised_total_selects_the_side_taken() -> None:
    got = latency.realised_total([LOCAL, CLOUD], [T_S, T_S], [T_E, np.nan])
    # a NaN on the side not taken does not leak into the realised total
    np.testing.assert_allclose(got, [T_S, np.nan])
    assert latency.realised_total(LOCAL, T_S, np.nan) == pytest.approx(T_S)


# --------------------------------------------------------------------------- eqs. 11-12


def test_eq11_eq12_fused_decision_by_hand() -> None:
    # p~ = 0.5 - 0.05 * 1.770028005 = 0.5 - 0.08850140025 = 0.41149859975
    fused = fusion.fused_score(0.5, 0.05, T_S, T_E)
    assert fused == pytest.approx(0.41149859975, rel=1e-12)
    assert fusion.decide(fused, 0.45) == LOCAL  # 0.4115 <= 0.45
    assert fusion.decide(fused, 0.40) == CLOUD  # 0.4115 >  0.40
    assert fusion.decide(0.3, 0.3) == LOCAL  # eq. 12: equality goes local
    assert fusion.decide(np.nan, 1.0) == CLOUD  # unknown score keeps quality
    r = fusion.route(MODEL, [0.5, 0.5], 0.05, [0.45, 0.40], 100)
    np.testing.assert_array_equal(r.decision, [LOCAL, CLOUD])
    np.testing.assert_allclose(r.realised, [T_S, T_E])


def test_gap_decreases_monotonically_with_bandwidth() -> None:
    bandwidths = np.logspace(1, 9, 40)
    gaps = [
        LatencyModel(SLM, LLM, LinkProfile("b", float(b), 0.02)).gap([100, 5], [0, 3000])
        for b in bandwidths
    ]
    gaps = np.array(gaps)  # shape (40, 2)
    assert np.all(np.diff(gaps, axis=0) < 0)
    # at infinite bandwidth the gap tends to Table I's compute-only gap + delta (= GAP at B=2e7
    # minus the two transfer terms 0.000005 + 0.000023005)
    assert gaps[-1, 0] == pytest.approx(GAP - 0.000028005, abs=1e-6)


def test_fused_decision_monotone_in_theta_and_alpha() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 500)
    lp = rng.integers(1, 2000, 500).astype(float)
    tl, tc = MODEL.t_local(lp), MODEL.t_cloud(lp)
    # Table I: T_e - T_s = (9.202 + 0.02 + 460.1/2e7 - 5.452) - (0.04 - 0.02 - 1/2e7)*Lp
    #                    = 3.770023005 - 0.01999995*Lp, positive below Lp ~ 188.5
    cloud_slower = tc > tl
    assert cloud_slower.any() and (~cloud_slower).any()
    thetas = np.linspace(0, 1, 21)
    local = np.array(
        [fusion.decide(fusion.fused_score(p, 0.05, tl, tc), t) == LOCAL for t in thetas]
    )
    # raising theta only ever turns cloud decisions into local ones
    assert np.all(np.diff(local.astype(int), axis=0) >= 0)
    alphas = np.linspace(0, 0.2, 21)
    local_a = np.array(
        [fusion.decide(fusion.fused_score(p, a, tl, tc), 0.5) == LOCAL for a in alphas]
    )
    step = np.diff(local_a.astype(int), axis=0)
    # where the cloud is slower a larger alpha only ever moves queries local, else only cloud
    assert np.all(step[:, cloud_slower] >= 0)
    assert np.all(step[:, ~cloud_slower] <= 0)
    assert step[:, cloud_slower].any() and step[:, ~cloud_slower].any()


def test_nan_and_none_propagate() -> None:
    np.testing.assert_array_equal(np.isnan(MODEL.t_local([100, np.nan])), [False, True])
    assert np.isnan(fusion.fused_score(None, 0.05, T_S, T_E))
    # eq. 1-7 with an unknown prompt length in a batch: only that row is NaN
    assert np.isnan(MODEL.gap([np.nan, 100])).tolist() == [True, False]
    unknown_lr = SideLatency("no-workload", 0.04)
    assert np.isnan(latency.t_total_local(unknown_lr, 100))


# --------------------------------------------------------------------------- accounting


def test_flops_and_dollar_cost() -> None:
    # 2 * 3e9 params * 1000 tokens = 6e12
    assert accounting.flops(3, 1000) == pytest.approx(6e12)
    np.testing.assert_allclose(accounting.flops([3, None], [1000, 10]), [6e12, np.nan])
    # 1000 * $3/M + 500 * $15/M = 0.003 + 0.0075 = 0.0105
    assert accounting.dollar_cost(1000, 500, 3.0, 15.0) == pytest.approx(0.0105)
    got = accounting.dollar_cost([1000, 1000], [500, 500], [3.0, None], 15.0)
    np.testing.assert_allclose(got, [0.0105, np.nan])  # unknown price: NaN, never 0
    with pytest.raises(ValueError, match="tokens_in"):
        accounting.dollar_cost(-1, 0, 1.0, 1.0)


# --------------------------------------------------------------------------- profiles


def test_link_profile_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"links\.lte\.bandwidth_tokens_s must be > 0, got -3"):
        LinkProfile("lte", bandwidth_tokens_s=-3, overhead_s=0.05)
    with pytest.raises(ValueError, match=r"links\.lte\.bandwidth_tokens_s must be > 0, got 0"):
        LinkProfile("lte", bandwidth_tokens_s=0, overhead_s=0.05)
    with pytest.raises(ValueError, match=r"links\.lte\.overhead_s must be >= 0"):
        LinkProfile("lte", bandwidth_tokens_s=1e6, overhead_s=-0.01)
    with pytest.raises(ValueError, match=r"links\.lte\.provenance"):
        LinkProfile("lte", bandwidth_tokens_s=1e6, overhead_s=0.01, provenance="guessed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="s_per_token"):
        SideLatency("x", s_per_token=-0.04)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "links.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD_LTE = """
links:
  lte:
    bandwidth_mbit_s: 21.3
    overhead_s: 0.055
    provenance: published
    source: test
"""


def test_yaml_good_and_scientific_notation(tmp_path: Path) -> None:
    profiles = yaml_profiles.load_link_profiles(_write(tmp_path, GOOD_LTE))
    # 21.3e6 / 32 = 665,625 tokens/s
    assert profiles["lte"].bandwidth_tokens_s == pytest.approx(665_625.0)
    assert profiles["lte"].bytes_per_token == 4.0
    # YAML 1.1 would read 2.0e7 as a string; the loader reads it as a number
    text = "links:\n  p:\n    bandwidth_tokens_s: 2.0e7\n    overhead_s: 2e-2\n"
    text += "    provenance: published\n    source: t\n"
    p = yaml_profiles.load_link_profiles(_write(tmp_path, text))["p"]
    assert (p.bandwidth_tokens_s, p.overhead_s) == (2e7, 0.02)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (GOOD_LTE.replace("21.3", "-3"), r"links\.lte\.bandwidth_mbit_s must be > 0, got -3"),
        (
            GOOD_LTE.replace("bandwidth_mbit_s: 21.3", "bandwidth_tokens_s: -3"),
            r"links\.lte\.bandwidth_tokens_s must be > 0, got -3",
        ),
        (GOOD_LTE.replace("    overhead_s: 0.055\n", ""), r"links\.lte\.overhead_s is required"),
        (
            GOOD_LTE.replace("    bandwidth_mbit_s: 21.3\n", ""),
            r"links\.lte\.bandwidth_tokens_s \(or bandwidth_mbit_s\) is required",
        ),
        (GOOD_LTE.replace("    source: test\n", ""), r"links\.lte\.source is required"),
        (GOOD_LTE.replace("bandwidth_mbit_s", "bandwith_mbit_s"), r"links\.lte: unknown key"),
        (GOOD_LTE.replace("21.3", "fast"), r"links\.lte\.bandwidth_mbit_s must be a number"),
        (GOOD_LTE.replace("0.055", "-0.1"), r"links\.lte\.overhead_s must be >= 0"),
        (GOOD_LTE.replace("published", "guessed"), r"links\.lte\.provenance must be one of"),
        (
            GOOD_LTE + "    bandwidth_tokens_s: 5\n",
            r"links\.lte: give bandwidth_tokens_s or bandwidth_mbit_s, not both",
        ),
        (GOOD_LTE + "extra: 1\n", r"unknown key\(s\) \['extra'\]"),
        ("links: []\n", r"'links' must be a non-empty mapping"),
        ("links:\n  lte: 5\n", r"links\.lte must be a mapping"),
    ],
)
def test_yaml_errors_name_profile_and_field(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(CostConfigError, match=match) as info:
        yaml_profiles.load_link_profiles(_write(tmp_path, text))
    assert isinstance(info.value, ValueError)


def test_unknown_profile_lists_known_names() -> None:
    profiles = yaml_profiles.load_link_profiles(LINKS_YAML)
    with pytest.raises(UnknownProfileError, match=r"'6g'.*known: 5g, fibre, lte") as info:
        yaml_profiles.get_link("6g", profiles)
    assert isinstance(info.value, ValueError) and isinstance(info.value, KeyError)
    assert str(info.value).startswith("unknown link profile '6g'")


def test_links_yaml_loads_and_every_profile_validates() -> None:
    profiles = yaml_profiles.load_link_profiles(LINKS_YAML)
    assert {"paper-table1", "5g", "wifi6", "lte", "fibre"} <= set(profiles)
    for name, prof in profiles.items():
        assert prof.name == name
        assert prof.source.strip(), name
        assert prof.provenance in sides.PROVENANCES
        assert prof.bandwidth_tokens_s > 0 and prof.upload_tokens_s > 0 and prof.overhead_s >= 0
        # re-constructing validates again (frozen dataclass __post_init__)
        assert LinkProfile(**{f: getattr(prof, f) for f in prof.__dataclass_fields__}) == prof
    # Table I, nothing converted
    t1 = profiles["paper-table1"]
    assert (t1.bandwidth_tokens_s, t1.overhead_s, t1.provenance) == (2e7, 0.02, "published")
    # conversions the YAML comments state, at 4 bytes/token (Mbit/s * 1e6 / 32)
    assert profiles["5g"].bandwidth_tokens_s == pytest.approx(3_470_937.5)  # 111.07 Mbit/s
    assert profiles["5g"].upload_tokens_s == pytest.approx(347_500.0)  # 11.12 Mbit/s
    assert profiles["lte"].upload_tokens_s == pytest.approx(196_875.0)  # 6.3 Mbit/s
    assert profiles["wifi6"].bandwidth_tokens_s == pytest.approx(14_812_500.0)  # 474 Mbit/s
    assert profiles["fibre"].bandwidth_tokens_s == pytest.approx(10_901_875.0)  # 348.86 Mbit/s


def test_paper_preset_reproduces_table1() -> None:
    presets = yaml_profiles.load_latency_presets(LINKS_YAML)
    table1 = yaml_profiles.get_preset("paper-table1", presets)
    assert table1.workload("gsm8k").alpha == 0.05 and table1.workload("mmlu").alpha == 0.03
    assert table1.workload("mt-bench-101").alpha is None
    model = yaml_profiles.load_latency_model(LINKS_YAML, "paper-table1", "gsm8k")
    assert model.t_local(100) == pytest.approx(T_S, rel=1e-12)
    assert model.t_cloud(100) == pytest.approx(T_E, rel=1e-12)
    # the same preset over a 5G profile: only the link terms change
    m5g = yaml_profiles.load_latency_model(LINKS_YAML, "paper-table1", "gsm8k", link="5g")
    assert m5g.t_local(100) == pytest.approx(T_S)
    # 2 + 100/347500 + 0.031 + 460.1/3470937.5 + 9.202
    want = 2 + 100 / 347_500 + 0.031 + 460.1 / 3_470_937.5 + 9.202
    assert m5g.t_cloud(100) == pytest.approx(want, rel=1e-12)
    with pytest.raises(UnknownProfileError, match="known: gsm8k, mmlu, mt-bench-101"):
        table1.workload("humaneval")
    with pytest.raises(UnknownProfileError, match="unknown latency model"):
        yaml_profiles.load_latency_model(LINKS_YAML, "nope", "gsm8k")


# --------------------------------------------------------------------------- multi-turn


def test_conversation_context_any_row_order() -> None:
    # conv "a": Lp 10, 20, 30 and recorded Lr 5, 6, 7 -> Ct = 0, 10+5 = 15, 15+20+6 = 41
    # conv "b": turns 1 and 3 (gaps allowed): Lp 1, 2, Lr 3, 4 -> Ct = 0, 1+3 = 4
    conv = np.array(["b", "a", "a", "b", "a"])
    turn = np.array([3, 2, 0, 1, 1])
    lp = np.array([2, 30, 10, 1, 20])
    lr = np.array([4, 7, 5, 3, 6])
    np.testing.assert_allclose(
        conversation.conversation_context(conv, turn, lp, lr), [4, 41, 0, 0, 15]
    )
    with pytest.raises(ValueError, match="duplicate"):
        conversation.conversation_context(["a", "a"], [0, 0], [1, 1], [1, 1])
    # a missing response length makes later context of that conversation unknown, no other
    got = conversation.conversation_context(
        ["a", "a", "a", "b", "b"], [0, 1, 2, 0, 1], [1, 1, 1, 2, 2], [1, None, 1, 3, 3]
    )
    np.testing.assert_allclose(got, [0, 2, np.nan, 0, 5])


# One conversation: Lp = 100, 50, 20; recorded Lr = 150, 200, 80 -> Ct = 0, 250, 500.
LP3, LR3 = np.array([100.0, 50.0, 20.0]), np.array([150.0, 200.0, 80.0])


def _fixed(decisions: list[int], seen: list[TurnView]) -> conversation.Policy:
    def policy(view: TurnView) -> np.ndarray:
        seen.append(view)
        return np.array([decisions[int(r) % 3] for r in view.rows])

    return policy


def test_replay_local_cloud_local_by_hand() -> None:
    seen: list[TurnView] = []
    res = conversation.replay_conversations(
        [7, 7, 7], [0, 1, 2], LP3, LR3, _fixed([LOCAL, CLOUD, LOCAL], seen), MODEL
    )
    np.testing.assert_allclose(res.context_tokens, [0, 250, 500])
    np.testing.assert_array_equal(res.switched, [False, True, True])
    np.testing.assert_allclose(res.reprefill_tokens, [0, 250, 500])
    # turn 1 local, first turn: 0.04*100 + 0.04*136.3 = 9.452
    # turn 2 cloud after local, re-prefill 250:
    #   0.02*(250+50) + (250+50)/2e7 + 0.02 + 460.1/2e7 + 0.02*460.1
    #   = 6 + 0.000015 + 0.02 + 0.000023005 + 9.202 = 15.222038005
    # turn 3 local after cloud, re-prefill all 500: 0.04*(500+20) + 5.452 = 26.252
    np.testing.assert_allclose(res.realised, [9.452, 15.222038005, 26.252], rtol=1e-12)
    assert res.cloud_share == pytest.approx(1 / 3)
    assert res.mean_latency_s == pytest.approx((9.452 + 15.222038005 + 26.252) / 3)
    # what the policy saw at turn 3: switching local costs the re-prefill, staying cloud not
    assert bool(seen[2].switch_if_local[0]) and not bool(seen[2].switch_if_cloud[0])
    assert seen[2].t_local[0] == pytest.approx(26.252)


def test_replay_incremental_kv_cache_reprefills_only_new_context() -> None:
    res = conversation.replay_conversations(
        [7, 7, 7],
        [0, 1, 2],
        LP3,
        LR3,
        _fixed([LOCAL, CLOUD, LOCAL], []),
        MODEL,
        kv_cache="incremental",
    )
    # the SLM cached turn 1 (0 + 100 + 150 = 250 tokens), so turn 3 re-prefills 500 - 250 = 250:
    # 0.04*(250+20) + 5.452 = 10.8 + 5.452 = 16.252
    np.testing.assert_allclose(res.reprefill_tokens, [0, 250, 250])
    assert res.realised[2] == pytest.approx(16.252)


def test_context_agnostic_ignores_switch_cost_but_still_pays_it() -> None:
    seen: list[TurnView] = []
    res = conversation.replay_conversations(
        [7, 7, 7],
        [0, 1, 2],
        LP3,
        LR3,
        _fixed([LOCAL, CLOUD, LOCAL], seen),
        MODEL,
        context_aware=False,
    )
    # decided on 0.04*20 + 5.452 = 6.252, paid 26.252
    assert seen[2].t_local[0] == pytest.approx(6.252)
    assert res.t_local_decided[2] == pytest.approx(6.252)
    assert res.t_local_paid[2] == pytest.approx(26.252)
    assert res.realised[2] == pytest.approx(26.252)


def test_fusion_policy_context_aware_beats_agnostic() -> None:
    # p = 0, 1, 0.3; alpha = 0.05, theta = 0.2. Turns 1-2 go local then cloud either way.
    # Turn 3, aware: T_s = 26.252 (switch), T_e (stay) = 0.02*20 + 520/2e7 + 0.02
    #   + 460.1/2e7 + 9.202 = 9.622049005 -> p~ = 0.3 + 0.05*16.629950995 = 1.13 > 0.2: cloud
    # Turn 3, agnostic: T_s = 6.252 -> p~ = 0.3 - 0.05*3.370049005 = 0.1315 <= 0.2: local,
    #   and it then pays 26.252.
    p = [0.0, 1.0, 0.3]
    policy = fusion.fusion_policy(p, alpha=0.05, theta=0.2)
    aware = conversation.replay_conversations([1, 1, 1], [0, 1, 2], LP3, LR3, policy, MODEL)
    blind = conversation.replay_conversations(
        [1, 1, 1], [0, 1, 2], LP3, LR3, policy, MODEL, context_aware=False
    )
    np.testing.assert_array_equal(aware.decision, [LOCAL, CLOUD, CLOUD])
    np.testing.assert_array_equal(blind.decision, [LOCAL, CLOUD, LOCAL])
    assert aware.realised[2] == pytest.approx(9.622049005, rel=1e-12)
    assert blind.realised[2] == pytest.approx(26.252)
    assert aware.mean_latency_s < blind.mean_latency_s


def test_replay_interleaved_conversations_match_single_ones() -> None:
    rng = np.random.default_rng(1)
    conv = np.repeat(np.arange(4), 3)
    turn = np.tile([0, 1, 2], 4)
    lp, lr = np.tile(LP3, 4), np.tile(LR3, 4)
    p = rng.uniform(0, 1, 12)
    perm = rng.permutation(12)
    policy = fusion.fusion_policy(p[perm], 0.05, 0.5)
    shuffled = conversation.replay_conversations(
        conv[perm], turn[perm], lp[perm], lr[perm], policy, MODEL
    )
    for c in range(4):
        rows = np.flatnonzero(conv[perm] == c)
        single = conversation.replay_conversations(
            conv[perm][rows],
            turn[perm][rows],
            lp[perm][rows],
            lr[perm][rows],
            fusion.fusion_policy(p[perm][rows], 0.05, 0.5),
            MODEL,
        )
        np.testing.assert_array_equal(shuffled.decision[rows], single.decision)
        np.testing.assert_allclose(shuffled.realised[rows], single.realised)


def test_replay_rejects_bad_policy_output_and_mode() -> None:
    with pytest.raises(ValueError, match="policy must return"):
        conversation.replay_conversations([1], [0], [10], [5], lambda v: np.array([2]), MODEL)
    with pytest.raises(ValueError, match="kv_cache"):
        conversation.replay_conversations([1], [0], [10], [5], lambda v: [1], MODEL, kv_cache="all")  # type: ignore[arg-type]
    empty = conversation.replay_conversations([], [], [], [], lambda v: [], MODEL)
    assert empty.realised.size == 0


def test_per_query_response_lengths_replace_the_mean() -> None:
    # Lr per query instead of L_r bar: local 0.04*(100 + 50) = 6; cloud 0.02*(100 + 200) = 6
    # plus comm (100 + 200)/2e7 + 0.02 = 0.020015
    lr_l, lr_c = np.array([50.0, 136.3]), np.array([200.0, 460.1])
    tl = MODEL.t_local([100.0, 100.0], 0.0, response_tokens=lr_l)
    tc = MODEL.t_cloud([100.0, 100.0], 0.0, response_tokens=lr_c)
    assert tl[0] == pytest.approx(6.0) and tl[1] == pytest.approx(T_S)
    assert tc[0] == pytest.approx(6.020015) and tc[1] == pytest.approx(T_E)


def test_calibrated_is_a_provenance() -> None:
    side = SideLatency("Llama-3.1-8B", s_per_token=0.0046, provenance="calibrated")
    assert side.provenance in sides.PROVENANCES
    with pytest.raises(CostConfigError, match="provenance must be one of"):
        SideLatency("x", s_per_token=0.01, provenance="guessed")  # type: ignore[arg-type]
