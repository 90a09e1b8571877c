"""The report's experiment sections, each read from its metrics.json entry."""

from __future__ import annotations

from typing import Any

from localroute.report.html import (
    baseline_table,
    details,
    e,
    fmt,
    pct,
    sides_table,
)
from localroute.report.plots import mtbench_plot, savings_plot, single_turn_plot


def _alpha_sweep_table(routers: dict[str, Any]) -> str:
    """Per alpha of the grid, each router's least mean latency reaching each accuracy target
    (and the cloud share there): what the fusion weight buys, and where each router's sits."""
    sweeps = {k: r["alpha_sweep"] for k, r in routers.items() if r.get("alpha_sweep")}
    if not sweeps:
        return ""
    labels = list(sweeps)
    keys = sorted({(row["alpha"], row["fraction"]) for s in sweeps.values() for row in s})
    head = "".join(f"<th>{e(k)} (alpha {fmt(routers[k].get('alpha'))})</th>" for k in labels)
    rows = []
    for alpha, frac in keys:
        cells = []
        for k in labels:
            row = next(
                (r for r in sweeps[k] if r["alpha"] == alpha and r["fraction"] == frac), None
            )
            ok = row is not None and row["latency_s"] is not None
            cells.append(
                f"<td class=num>{fmt(row['latency_s'])} s ({pct(row['cloud_share'])})</td>"
                if ok
                else "<td class=num>not reached</td>"
            )
        lead = f"<td class=num>{fmt(alpha)}</td><td class=num>{pct(frac)}</td>"
        rows.append(f"<tr>{lead}{''.join(cells)}</tr>")
    return details(
        "Alpha sweep: least mean latency (cloud share) reaching each target, per alpha (1/s)",
        "<table><tr><th>alpha</th><th>target</th>" + head + "</tr>" + "".join(rows) + "</table>",
    )


def _target_table(routers: dict[str, Any]) -> str:
    rows = []
    for label, r in routers.items():
        for t in r["at_target"]:
            a, b = t.get("min_cloud_share"), t.get("min_latency")
            rows.append(
                f"<tr><td>{e(label)} ({e(r['router'])}, alpha {fmt(r.get('alpha'))})</td>"
                f"<td class=num>{fmt(r.get('auc'))}</td>"
                f"<td class=num>{fmt(t['quality_target'])} ({pct(t['fraction'])} of the gap)</td>"
                f"<td class=num>{pct(a['cloud_share']) if a else 'not reached'}</td>"
                f"<td class=num>{fmt(b['latency_s']) if b else 'not reached'}</td>"
                f"<td class=num>{pct(b['cloud_share']) if b else ''}</td></tr>"
            )
    return (
        "<table><tr><th>router + fusion</th><th>AUC</th><th>accuracy target</th>"
        "<th>least cloud share reaching it</th><th>least mean latency (s)</th>"
        "<th>cloud share there</th></tr>" + "".join(rows) + "</table>"
    )


def single_turn_section(key: str, title: str, m: dict[str, Any]) -> str:
    parts = [f"<h2 id='{key}'>{e(title)} (<code>{key}</code>)</h2>"]
    for name, pair in m.get("pairs", {}).items():
        parts.append(
            f"<h3>{e(name)}: {e(pair['local'])} (local) vs {e(pair['cloud'])} (cloud), "
            f"source <code>{e(pair['source'])}</code></h3>"
            f"<p class=note>{pair['n_test']} test queries "
            f"({pair['n_contaminated_dropped']} contaminated dropped); baselines fuse at alpha = "
            f"{pair['alpha']:g} per second ({e(pair.get('alpha_from', 'seed 001 Table I'))}), "
            "each router at the alpha its row names; learned = the router artifact (see the top), "
            "baselines fitted on the train split, every router scored on test.</p>"
        )
        if pair.get("fit_note"):
            parts.append(f"<p class=note>{e(pair['fit_note'])}</p>")
        parts.append(single_turn_plot(name, pair))
        parts.append(baseline_table(pair["baselines"]))
        parts.append(_target_table(pair["routers"]))
        parts.append(_alpha_sweep_table(pair["routers"]))
        parts.append(
            details(
                "Latency, energy, compute and price figures of this pair, with provenance",
                sides_table(pair["sides"]),
            )
        )
    for n in m.get("skipped", []):
        parts.append(f"<p class=note>{e(n)}</p>")
    if not m.get("pairs"):
        parts.append("<p class=note>No pair could be evaluated.</p>")
    return "".join(parts)


def multiturn_section(m: dict[str, Any]) -> str:
    parts = [
        "<h2 id='fusion_multiturn'>MT-Bench, multi-turn: context-aware vs agnostic "
        "(<code>fusion_multiturn</code>)</h2>"
    ]
    if "skipped" in m:
        return parts[0] + f"<p class=note>Skipped: {e(m['skipped'])}</p>"
    parts.append(
        f"<p class=note>{m['n_conversations']} two-turn conversations, {m['n_turns']} turns "
        f"({m['n_contaminated_turns_dropped']} contaminated turns dropped), "
        f"{e(m['local'])} (local) vs "
        f"{e(m['cloud'])} (cloud), RouteLLM's GPT-4 judge score per turn. "
        "Learned = the router artifact; "
        f"baselines fitted on {e(', '.join(m['train_sources']))} (same pair; MT-Bench is "
        "evaluation only). alpha = "
        f"{m['alpha']:g} per second, {e(m['alpha_provenance'])}. {e(m['history'])}. "
        "Context-aware: the decision sees the re-prefill of eq. 1 when the turn would switch "
        "model; "
        "context-agnostic: it does not, but the realised latency still pays it.</p>"
    )
    parts.append(mtbench_plot(m))
    rows = []
    for label, r in m["routers"].items():
        for t in r["at_target"]:
            pt = t["point"]
            rows.append(
                f"<tr><td>{e(label)} ({e(r['router'])})</td><td>{e(t['mode'])}</td>"
                f"<td class=num>{fmt(1 + 9 * t['quality_target'])}</td>"
                + (
                    f"<td class=num>{fmt(pt['latency_s'])}</td>"
                    f"<td class=num>{pct(pt['cloud_share'])}</td>"
                    f"<td class=num>{fmt(pt['score_raw'])}</td><td class=num>{pt['switches']}</td>"
                    if pt
                    else "<td colspan=4>not reached</td>"
                )
                + "</tr>"
            )
    parts.append(
        "<table><tr><th>router + fusion</th><th>mode</th><th>score target (1-10)</th>"
        "<th>least mean "
        "latency (s)</th><th>cloud share</th><th>score</th><th>model switches</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    parts.append(details("Figures of this pair, with provenance", sides_table(m["sides"])))
    return "".join(parts)


def savings_section(m: dict[str, Any]) -> str:
    parts = [
        "<h2 id='savings'>Savings against cloud-only at matched accuracy "
        "(<code>savings</code>)</h2>",
        f"<p class=note>Operating point: {e(m['matched_accuracy'])}; routing on router score "
        "alone "
        "(alpha = 0), as seed 000 does. Energy = J per output token x output tokens; compute = 2 x "
        "active parameters x (input + output tokens); dollars = API price for the cloud side, "
        "electricity of the energy estimate for the local side. Savings are "
        "1 - policy / cloud-only.</p>",
        savings_plot(m["rows"]),
    ]
    keys = ("energy_j", "flops", "cost_usd", "latency_s")
    head = "".join(f"<th>{k} saved</th>" for k in keys)
    rows = []
    for r in m["rows"]:
        if not r.get("reached"):
            rows.append(
                f"<tr><td>{e(r['source'])}: {e(r['pair'])}</td><td>{e(r['policy'])}</td>"
                f"<td colspan={4 + len(keys)}>does not reach {fmt(r['target_quality'])}</td></tr>"
            )
            continue
        s = r["savings_vs_cloud_only"]
        rows.append(
            f"<tr><td>{e(r['source'])}: {e(r['pair'])}</td><td>{e(r['policy'])}</td>"
            f"<td class=num>{fmt(r['quality'])}</td><td class=num>{pct(r['local_share'])}</td>"
            + "".join(f"<td class=num>{pct(s.get(k))}</td>" for k in keys)
            + f"<td class=num>{fmt(r['energy_j'])}</td>"
            f"<td class=num>{fmt(r['accuracy_per_joule'])}</td></tr>"
        )
    parts.append(
        f"<table><tr><th>pair</th><th>policy</th><th>accuracy</th><th>local share</th>{head}"
        "<th>J / query</th><th>accuracy per joule</th></tr>" + "".join(rows) + "</table>"
    )
    for name, sides in m.get("sides", {}).items():
        parts.append(details(f"{name}: figures with provenance", sides_table(sides)))
    for n in m.get("skipped", []):
        parts.append(f"<p class=note>{e(n)}</p>")
    return "".join(parts)
