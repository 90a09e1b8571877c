"""Render report.html from a metrics dict (or a metrics.json path) alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from localroute.report.html import PROVENANCES, STYLE, details, e, fmt, prov
from localroute.report.sections import multiturn_section, savings_section, single_turn_section
from localroute.report.summary import summary_section

SECTIONS = ("summary", "fusion_mmlu", "fusion_gsm8k", "fusion_multiturn", "savings")


def _setting(metrics: dict[str, Any]) -> str:
    link = metrics.get("link") or {}
    measured = metrics.get("measured")
    meas = (
        f"measured local per-token times from {e(measured['model'])} on "
        f"{e(measured['hardware'])} ({measured['rows']} rows, {e(measured['path'])})"
        if measured
        else "no measured outcome rows were given: local figures are calibrated or from config"
    )
    return (
        "<p>Routing decisions replayed over real outcome rows with seed 001's latency cost model "
        "(eqs. 1-8) and fusion rule (eqs. 11-12), and seed 000's per-query accounting. Quality is "
        "published per query (RouteLLM, RouterDC, LLMRouter); latency and energy are modelled from "
        "the figures listed under each experiment, each with its provenance: "
        + " ".join(prov(p) for p in PROVENANCES)
        + ".</p>"
        f"<p>Link: <b>{e(link.get('name'))}</b> B = {fmt(link.get('bandwidth_tokens_s'))} "
        f"tokens/s down, {fmt(link.get('uplink_tokens_s'))} up, delta = "
        f"{fmt(link.get('overhead_s'))} s ({prov(link.get('provenance', 'absent'))}: "
        f"{e(link.get('source', ''))}).</p>"
        f"<p>{meas}. ML.ENERGY data: {e(metrics.get('mlenergy'))}. Tokens are whitespace words, "
        "as in seed 001.</p>"
    )


def render_report(metrics: dict[str, Any]) -> str:
    toc = "<ul>" + "".join(f"<li><a href='#{k}'>{k}</a></li>" for k in SECTIONS) + "</ul>"
    body = [
        "<h1>localroute evaluate</h1>",
        summary_section(metrics),
        details("Setting: link, measured rows, provenance legend", _setting(metrics)),
        toc,
        single_turn_section(
            "fusion_mmlu", "MMLU: accuracy vs latency and cloud share", metrics["fusion_mmlu"]
        ),
        single_turn_section(
            "fusion_gsm8k", "GSM8K: accuracy vs latency and cloud share", metrics["fusion_gsm8k"]
        ),
        multiturn_section(metrics["fusion_multiturn"]),
        savings_section(metrics["savings"]),
    ]
    notes = metrics.get("notes") or []
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>localroute evaluate</title>"
        f"<style>{STYLE}</style></head><body>" + "".join(body) + "</body></html>\n"
    )


def write_report(metrics: dict[str, Any] | str | Path, out_path: str | Path) -> Path:
    """Write report.html for a metrics dict, or a metrics.json path (or a directory holding
    one): `localroute report DIR` regenerates the report without re-running evaluate."""
    if not isinstance(metrics, dict):
        src = Path(metrics)
        if src.is_dir():
            src = src / "metrics.json"
        metrics = json.loads(src.read_text(encoding="utf-8"))
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(metrics), encoding="utf-8")
    return path
