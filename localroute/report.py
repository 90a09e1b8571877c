"""The evaluate report: one self-contained HTML file (PNG plots inlined) built from metrics.json.

Everything drawn or tabulated here is read from the metrics dict that `localroute evaluate` writes,
so the report can be rebuilt from ``metrics.json`` alone (:func:`write_report`). Every latency and
energy figure is shown with its provenance and source.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from localroute.accounting import POINT_KEYS

__all__ = ["render_report", "write_report"]

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ccc;padding-top:1em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.prov-measured{color:#0a6b0a;font-weight:600}.prov-calibrated{color:#1d4f91;font-weight:600}
.prov-published{color:#555;font-weight:600}.prov-estimated,.prov-assumed{color:#a05a00;font-weight:600}
.prov-absent{color:#b00;font-weight:600}.note{color:#555;font-size:.9em}img{max-width:100%}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "null"
        a = abs(v)
        if a != 0 and (a >= 1e5 or a < 1e-3):
            return f"{v:.3e}"
        return f"{v:.{digits}g}"
    return _e(v)


def _pct(v: Any) -> str:
    return "null" if v is None else f"{100 * v:.1f}%"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return (
        f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'
    )


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_COLORS = {"learned": "C0", "random": "C1", "oracle": "C2"}


def _single_turn_plot(name: str, pair: dict[str, Any]) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    alpha_key = f"{pair['alpha']:g}"
    for label, r in pair["routers"].items():
        color = _COLORS.get(label)
        for key, style in ((alpha_key, "-"), ("0", ":")):
            c = r["curves"].get(key)
            if c is None or (key == "0" and alpha_key == "0" and style == ":"):
                continue
            lab = f"{label} ({r['router']}) + fusion a={key}" if key != "0" else f"{label} a=0"
            xs = [x if x is not None else math.nan for x in c["latency_s"]]
            axes[0].plot(xs, c["quality"], style, color=color, label=lab)
            if key == alpha_key:
                axes[1].plot(c["cloud_share"], c["quality"], style, color=color, label=lab)
    for base, marker in (("local_only", "s"), ("cloud_only", "^")):
        b = pair["baselines"][base]
        lat = b["latency_s"] if b["latency_s"] is not None else math.nan
        axes[0].plot([lat], [b["quality"]], marker, color="k", label=base.replace("_", "-"))
        axes[1].plot([b["cloud_share"]], [b["quality"]], marker, color="k")
    for t in pair["targets"]:
        for ax in axes:
            ax.axhline(t["quality"], color="grey", lw=0.6, ls="--")
    axes[0].set_xlabel("mean latency per query (s, modelled: eqs. 6-8)")
    axes[0].set_ylabel("accuracy (mean quality)")
    axes[0].set_title(f"{name}: accuracy vs latency (seed 001 Fig. 3/4)")
    axes[1].set_xlabel("cloud share (LLM usage)")
    axes[1].set_title(f"accuracy vs cloud share at alpha={alpha_key} (Fig. 5)")
    axes[0].legend(fontsize=7)
    return _png(fig)


def _mtbench_plot(m: dict[str, Any]) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, r in m["routers"].items():
        color = _COLORS.get(label)
        for mode, style in (("context_aware", "-"), ("context_agnostic", "--")):
            c = r[mode]
            lab = f"{label} ({r['router']}) {'w/' if mode == 'context_aware' else 'w/o'} context"
            axes[0].plot(
                c["latency_s"], c["score_raw"], style, color=color, label=lab, marker=".", ms=3
            )
            axes[1].plot(
                c["cloud_share"], c["score_raw"], style, color=color, label=lab, marker=".", ms=3
            )
    axes[0].set_xlabel("mean latency per turn (s, modelled, incl. re-prefill on switches)")
    axes[0].set_ylabel("MT-Bench judge score (1-10)")
    axes[0].set_title("MT-Bench per turn: score vs latency (seed 001 Fig. 6)")
    axes[1].set_xlabel("cloud share of turns")
    axes[1].set_title("score vs cloud share")
    axes[0].legend(fontsize=7)
    return _png(fig)


def _savings_plot(rows: list[dict[str, Any]]) -> str:
    plt = _plt()
    pick = [
        r for r in rows if r["policy"].startswith("learned") or r["policy"].startswith("oracle")
    ]
    pick = [r for r in pick if r.get("reached")]
    if not pick:
        return "<p class='note'>No router reached the matched accuracy: nothing to plot.</p>"
    fig, ax = plt.subplots(figsize=(11, 3.8))
    keys = ("energy_j", "flops", "cost_usd", "latency_s")
    width = 0.8 / len(keys)
    for i, k in enumerate(keys):
        vals = [r["savings_vs_cloud_only"].get(k) for r in pick]
        vals = [100 * v if v is not None else math.nan for v in vals]
        ax.bar([j + i * width for j in range(len(pick))], vals, width, label=k)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(pick))])
    ax.set_xticklabels(
        [f"{r['source']}: {r['policy'].split(' ')[0]}" for r in pick],
        fontsize=7,
        rotation=25,
        ha="right",
    )
    ax.set_ylabel("saving vs cloud-only (%)")
    ax.axhline(0, color="k", lw=0.6)
    ax.legend(fontsize=8)
    ax.set_title("Savings against cloud-only at matched accuracy (seed 000)")
    return _png(fig)


def _prov(p: str) -> str:
    return f'<span class="prov-{_e(p)}">{_e(p)}</span>'


def _sides_table(sides: dict[str, Any]) -> str:
    rows = []
    for role, side in sides.items():
        for fname, f in side["figures"].items():
            if role == "cloud" and fname == "electricity_usd_per_kwh":
                continue
            if role == "local" and fname in ("input_usd_per_m", "output_usd_per_m"):
                continue
            rows.append(
                f"<tr><td>{_e(role)}: {_e(side['model'])}</td><td>{_e(fname)}</td>"
                f"<td class=num>{_fmt(f['value'])}</td><td>{_prov(f['provenance'])}</td>"
                f"<td>{_e(f['source'])}</td></tr>"
            )
        for n in side.get("notes", []):
            rows.append(f"<tr><td>{_e(role)}</td><td colspan=4 class=note>{_e(n)}</td></tr>")
    return (
        "<table><tr><th>side</th><th>figure</th><th>value</th><th>provenance</th><th>source</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _baseline_table(base: dict[str, Any]) -> str:
    keys = (*POINT_KEYS, "accuracy_per_joule")
    head = "".join(f"<th>{k}</th>" for k in keys)
    body = "".join(
        f"<tr><td>{_e(n)}</td>"
        + "".join(f"<td class=num>{_fmt((b or {}).get(k))}</td>" for k in keys)
        + "</tr>"
        for n, b in base.items()
    )
    return f"<table><tr><th>policy</th>{head}</tr>{body}</table>"


def _target_table(routers: dict[str, Any]) -> str:
    rows = []
    for label, r in routers.items():
        for t in r["at_target"]:
            a, b = t.get("min_cloud_share"), t.get("min_latency")
            rows.append(
                f"<tr><td>{_e(label)} ({_e(r['router'])})</td>"
                f"<td class=num>{_fmt(r.get('auc'))}</td>"
                f"<td class=num>{_fmt(t['quality_target'])} ({_pct(t['fraction'])} of the gap)</td>"
                f"<td class=num>{_pct(a['cloud_share']) if a else 'not reached'}</td>"
                f"<td class=num>{_fmt(b['latency_s']) if b else 'not reached'}</td>"
                f"<td class=num>{_pct(b['cloud_share']) if b else ''}</td></tr>"
            )
    return (
        "<table><tr><th>router + fusion</th><th>AUC</th><th>accuracy target</th>"
        "<th>least cloud share reaching it</th><th>least mean latency (s)</th>"
        "<th>cloud share there</th></tr>" + "".join(rows) + "</table>"
    )


def _single_turn_section(key: str, title: str, m: dict[str, Any]) -> str:
    parts = [f"<h2 id='{key}'>{_e(title)} (<code>{key}</code>)</h2>"]
    for name, pair in m.get("pairs", {}).items():
        parts.append(
            f"<h3>{_e(name)}: {_e(pair['local'])} (local) vs {_e(pair['cloud'])} (cloud), "
            f"source <code>{_e(pair['source'])}</code></h3>"
            f"<p class=note>{pair['n_test']} test queries "
            f"({pair['n_contaminated_dropped']} contaminated dropped); alpha = {pair['alpha']:g} "
            "per second (seed 001 Table I); routers fitted on the train split (val for "
            "calibration), scored on test.</p>"
        )
        parts.append(_single_turn_plot(name, pair))
        parts.append(_baseline_table(pair["baselines"]))
        parts.append(_target_table(pair["routers"]))
        parts.append("<h4>Latency, energy, compute and price figures of this pair</h4>")
        parts.append(_sides_table(pair["sides"]))
    for n in m.get("skipped", []):
        parts.append(f"<p class=note>{_e(n)}</p>")
    if not m.get("pairs"):
        parts.append("<p class=note>No pair could be evaluated.</p>")
    return "".join(parts)


def _mtbench_section(m: dict[str, Any]) -> str:
    parts = [
        "<h2 id='seed001_mtbench'>MT-Bench, multi-turn: context-aware vs agnostic "
        "(<code>seed001_mtbench</code>)</h2>"
    ]
    if "skipped" in m:
        return parts[0] + f"<p class=note>Skipped: {_e(m['skipped'])}</p>"
    parts.append(
        f"<p class=note>{m['n_conversations']} two-turn conversations, {m['n_turns']} turns "
        f"({m['n_contaminated_turns_dropped']} contaminated turns dropped), "
        f"{_e(m['local'])} (local) vs "
        f"{_e(m['cloud'])} (cloud), RouteLLM's GPT-4 judge score per turn. Routers fitted on "
        f"{_e(', '.join(m['train_sources']))} (same pair; MT-Bench is evaluation only). alpha = "
        f"{m['alpha']:g} per second, {_e(m['alpha_provenance'])}. {_e(m['history'])}. "
        "Context-aware: the decision sees the re-prefill of eq. 1 when the turn would switch "
        "model; "
        "context-agnostic: it does not, but the realised latency still pays it.</p>"
    )
    parts.append(_mtbench_plot(m))
    rows = []
    for label, r in m["routers"].items():
        for t in r["at_target"]:
            pt = t["point"]
            rows.append(
                f"<tr><td>{_e(label)} ({_e(r['router'])})</td><td>{_e(t['mode'])}</td>"
                f"<td class=num>{_fmt(1 + 9 * t['quality_target'])}</td>"
                + (
                    f"<td class=num>{_fmt(pt['latency_s'])}</td>"
                    f"<td class=num>{_pct(pt['cloud_share'])}</td>"
                    f"<td class=num>{_fmt(pt['score_raw'])}</td><td class=num>{pt['switches']}</td>"
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
    parts.append(_sides_table(m["sides"]))
    return "".join(parts)


def _savings_section(m: dict[str, Any]) -> str:
    parts = [
        "<h2 id='seed000_savings'>Savings against cloud-only at matched accuracy "
        "(<code>seed000_savings</code>)</h2>",
        f"<p class=note>Operating point: {_e(m['matched_accuracy'])}; routing on router score "
        "alone "
        "(alpha = 0), as seed 000 does. Energy = J per output token x output tokens; compute = 2 x "
        "active parameters x (input + output tokens); dollars = API price for the cloud side, "
        "electricity of the energy estimate for the local side. Savings are "
        "1 - policy / cloud-only.</p>",
        _savings_plot(m["rows"]),
    ]
    keys = ("energy_j", "flops", "cost_usd", "latency_s")
    head = "".join(f"<th>{k} saved</th>" for k in keys)
    rows = []
    for r in m["rows"]:
        if not r.get("reached"):
            rows.append(
                f"<tr><td>{_e(r['source'])}: {_e(r['pair'])}</td><td>{_e(r['policy'])}</td>"
                f"<td colspan={4 + len(keys)}>does not reach {_fmt(r['target_quality'])}</td></tr>"
            )
            continue
        s = r["savings_vs_cloud_only"]
        rows.append(
            f"<tr><td>{_e(r['source'])}: {_e(r['pair'])}</td><td>{_e(r['policy'])}</td>"
            f"<td class=num>{_fmt(r['quality'])}</td><td class=num>{_pct(r['local_share'])}</td>"
            + "".join(f"<td class=num>{_pct(s.get(k))}</td>" for k in keys)
            + f"<td class=num>{_fmt(r['energy_j'])}</td>"
            f"<td class=num>{_fmt(r['accuracy_per_joule'])}</td></tr>"
        )
    parts.append(
        f"<table><tr><th>pair</th><th>policy</th><th>accuracy</th><th>local share</th>{head}"
        "<th>J / query</th><th>accuracy per joule</th></tr>" + "".join(rows) + "</table>"
    )
    for name, sides in m.get("sides", {}).items():
        parts.append(f"<h4>{_e(name)}</h4>" + _sides_table(sides))
    return "".join(parts)


def render_report(metrics: dict[str, Any]) -> str:
    link = metrics.get("link") or {}
    measured = metrics.get("measured")
    meas = (
        f"measured local per-token times from {_e(measured['model'])} on "
        f"{_e(measured['hardware'])} "
        f"({measured['rows']} rows, {_e(measured['path'])})"
        if measured
        else "no measured outcome rows were given: local figures are calibrated or from config"
    )
    head = (
        "<h1>localroute evaluate</h1>"
        "<p>Routing decisions replayed over real outcome rows with seed 001's latency cost model "
        "(eqs. 1-8) and fusion rule (eqs. 11-12), and seed 000's per-query accounting. Quality is "
        "published per query (RouteLLM, RouterDC, LLMRouter); latency and energy are modelled from "
        "the figures listed under each experiment, each with its provenance: "
        + " ".join(
            _prov(p)
            for p in ("measured", "calibrated", "published", "estimated", "assumed", "absent")
        )
        + ".</p>"
        f"<p>Link: <b>{_e(link.get('name'))}</b> B = {_fmt(link.get('bandwidth_tokens_s'))} "
        "tokens/s down, "
        f"{_fmt(link.get('uplink_tokens_s'))} up, delta = {_fmt(link.get('overhead_s'))} s "
        f"({_prov(link.get('provenance', 'absent'))}: {_e(link.get('source', ''))}).</p>"
        f"<p>{meas}. ML.ENERGY data: {_e(metrics.get('mlenergy'))}. Tokens are whitespace words, "
        "as in seed 001.</p>"
        "<ul>"
        + "".join(
            f"<li><a href='#{k}'>{k}</a></li>"
            for k in ("seed001_mmlu", "seed001_gsm8k", "seed001_mtbench", "seed000_savings")
        )
        + "</ul>"
    )
    body = [
        head,
        _single_turn_section(
            "seed001_mmlu", "MMLU: accuracy vs latency and cloud share", metrics["seed001_mmlu"]
        ),
        _single_turn_section(
            "seed001_gsm8k", "GSM8K: accuracy vs latency and cloud share", metrics["seed001_gsm8k"]
        ),
        _mtbench_section(metrics["seed001_mtbench"]),
        _savings_section(metrics["seed000_savings"]),
    ]
    notes = metrics.get("notes") or []
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>localroute evaluate</title>"
        f"<style>{_STYLE}</style></head><body>" + "".join(body) + "</body></html>\n"
    )


def write_report(metrics: dict[str, Any] | str | Path, path: str | Path) -> Path:
    """Write the HTML report for a metrics dict (or a metrics.json path)."""
    if not isinstance(metrics, dict):
        metrics = json.loads(Path(metrics).read_text())
    path = Path(path)
    path.write_text(render_report(metrics), encoding="utf-8")
    return path
