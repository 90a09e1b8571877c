"""The report's opening: the router artifact, the at-a-glance table and the headline plot.

Every number in the table is metrics.json's ``summary.rows`` (itself copied from the experiment
entries); each cell carries the exact value in ``data-v`` so a test can compare it.
"""

from __future__ import annotations

from typing import Any

from localroute.report.html import e, fmt, pct
from localroute.report.plots import headline_plot

COLUMNS = (  # (key, header, formatter)
    ("quality", "accuracy", fmt),
    ("cloud_share", "cloud share", pct),
    ("latency_s", "latency (s / query)", fmt),
    ("energy_j", "energy (J / query)", fmt),
    ("cost_usd", "cost (USD / query)", fmt),
)
SAVED = (("latency_s", "latency"), ("energy_j", "energy"), ("cost_usd", "cost"))


def _cell(key: str, value: Any, formatter) -> str:
    v = "" if value is None else repr(float(value))
    return f"<td class=num data-k='{key}' data-v='{v}'>{formatter(value)}</td>"


def artifact_block(artifact: dict[str, Any] | None) -> str:
    if not artifact:
        return "<p class=note>No router artifact: only baselines were evaluated.</p>"
    on = artifact.get("trained_on") or {}
    return (
        f"<p><b>Learned router</b>: <code>{e(artifact['router'])}</code> from the artifact "
        f"<code>{e(artifact['path'])}</code> (fingerprint <code>{e(artifact.get('fingerprint'))}"
        f"</code>), trained on <code>{e(on.get('source'))}</code> ({e(on.get('local'))} vs "
        f"{e(on.get('cloud'))}). It is the router that is served: every pair is scored "
        "with this one artifact, including pairs and sources it was not trained on.</p>"
    )


def summary_section(metrics: dict[str, Any]) -> str:
    s = metrics.get("summary") or {"rows": [], "pairs": []}
    head = (
        "<tr><th>pair</th><th>policy</th>"
        + "".join(f"<th>{h}</th>" for _, h, _ in COLUMNS)
        + "".join(f"<th>{h} saved vs cloud-only</th>" for _, h in SAVED)
        + "</tr>"
    )
    body = []
    transfer = {p["pair"] for p in s["pairs"] if p.get("transfer")}
    for r in s["rows"]:
        cls = "learned" if r["policy"].startswith(("learned", "as deployed")) else "baseline"
        name = r["policy"] + (f" ({r['router']})" if r.get("router") else "")
        attrs = f"class={cls} data-pair='{e(r['pair'])}' data-policy='{e(r['policy'])}'"
        shown = r["pair"] + (" (transfer)" if r["pair"] in transfer else "")
        if not r["reached"]:
            body.append(
                f"<tr {attrs}><td>{e(shown)}</td><td>{e(name)}</td>"
                f"<td colspan={len(COLUMNS) + len(SAVED)}>does not reach matched accuracy</td></tr>"
            )
            continue
        saved = r["savings_vs_cloud_only"]
        body.append(
            f"<tr {attrs}><td>{e(shown)}</td><td>{e(name)}</td>"
            + "".join(_cell(k, r[k], f) for k, _, f in COLUMNS)
            + "".join(_cell(f"saved_{k}", saved.get(k), pct) for k, _ in SAVED)
            + "</tr>"
        )
    transfer = " [transfer: the artifact was not trained for this pair]"
    pairs = "; ".join(
        f"{e(p['pair'])}{transfer if p.get('transfer') else ''}: "
        f"{e(p['local'])} (local) vs {e(p['cloud'])} (cloud), "
        f"{p['n_test']} test queries, alpha = {fmt(p['alpha'])} /s, matched accuracy "
        f"{fmt(p['quality_target'])}"
        for p in s["pairs"]
    )
    return (
        "<h2 id='summary'>At a glance</h2>"
        + artifact_block(metrics.get("artifact"))
        + headline_plot(metrics, s["pairs"])
        + f"<table>{head}{''.join(body)}</table>"
        + "<p class=note>Per pair, the first row is <b>as deployed</b>: the serve config's "
        "operating point replayed over the test traffic in arrival order through the server's "
        "own controller (localroute.core.controller), beside random and the oracle at the same "
        "cloud share. " + f"Matched accuracy: {e(s.get('matched_accuracy', ''))}. {pairs}. "
        "Latency, energy and cost are means per query, modelled from the figures (with their "
        "provenance) listed under each experiment.</p>"
    )
