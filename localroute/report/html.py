"""HTML building blocks of the report: escaping, number formats, provenance tags, tables, PNGs."""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

from localroute.core.accounting import POINT_KEYS

PROVENANCES = ("measured", "calibrated", "published", "estimated", "assumed", "absent")
COLORS = {"learned": "C0", "random": "C1", "oracle": "C2"}

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ccc;padding-top:1em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.learned td{background:#eef4fb}tr.baseline td{color:#444}
.prov-measured{color:#0a6b0a;font-weight:600}.prov-calibrated{color:#1d4f91;font-weight:600}
.prov-published{color:#555;font-weight:600}.prov-estimated,.prov-assumed{color:#a05a00;font-weight:600}
.prov-absent{color:#b00;font-weight:600}.note{color:#555;font-size:.9em}img{max-width:100%}
details{margin:.3em 0 1em}summary{cursor:pointer;color:#1d4f91}
"""


def e(x: Any) -> str:
    return html.escape(str(x))


def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool | int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "null"
        a = abs(v)
        if a != 0 and (a >= 1e5 or a < 1e-3):
            return f"{v:.3e}"
        return f"{v:.{digits}g}"
    return e(v)


def pct(v: Any) -> str:
    return "null" if v is None else f"{100 * v:.1f}%"


def prov(p: str) -> str:
    return f'<span class="prov-{e(p)}">{e(p)}</span>'


def details(label: str, body: str) -> str:
    """A folded block: provenance and per-figure tables stay one click away."""
    return f"<details><summary>{e(label)}</summary>{body}</details>"


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt().close(fig)
    return (
        f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'
    )


def legend_outside(ax, fontsize: int = 7) -> None:
    """The legend to the right of the axes, never over the curves."""
    ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)


def sides_table(sides: dict[str, Any]) -> str:
    rows = []
    for role, side in sides.items():
        for fname, f in side["figures"].items():
            if role == "cloud" and fname == "electricity_usd_per_kwh":
                continue
            if role == "local" and fname in ("input_usd_per_m", "output_usd_per_m"):
                continue
            rows.append(
                f"<tr><td>{e(role)}: {e(side['model'])}</td><td>{e(fname)}</td>"
                f"<td class=num>{fmt(f['value'])}</td><td>{prov(f['provenance'])}</td>"
                f"<td>{e(f['source'])}</td></tr>"
            )
        for n in side.get("notes", []):
            rows.append(f"<tr><td>{e(role)}</td><td colspan=4 class=note>{e(n)}</td></tr>")
    return (
        "<table><tr><th>side</th><th>figure</th><th>value</th><th>provenance</th><th>source</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def baseline_table(base: dict[str, Any]) -> str:
    keys = (*POINT_KEYS, "accuracy_per_joule")
    head = "".join(f"<th>{k}</th>" for k in keys)
    body = "".join(
        f"<tr><td>{e(n)}</td>"
        + "".join(f"<td class=num>{fmt((b or {}).get(k))}</td>" for k in keys)
        + "</tr>"
        for n, b in base.items()
    )
    return f"<table><tr><th>policy</th>{head}</tr>{body}</table>"
