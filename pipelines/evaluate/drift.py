"""Drift you can see (issue 21): the router artifact scored on serve's shadow labels over time.

`localroute evaluate --data feedback:DIR` reads the batches `serve.feedback` wrote (one file per
batch, named by the time it was written), scores every labelled request with the artifact and
reports, per batch and over a rolling window of the latest labels, AUC, Brier score and the
label rate: a router whose ranking or calibration decays on the traffic it serves shows it here
(the same figures /metrics gives live, `localroute_feedback_drift_*`). Writes metrics.json and a
self-contained report.html.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from localroute.errors import ConfigError


def batches(path: Path) -> list[tuple[str, Any]]:
    """(batch name, labelled examples) in the order they were written; a corrupt or foreign
    file is one DataError naming it (the data build's own reader validates each batch)."""
    from localroute.data.build import read_table
    from localroute.routers.examples import examples_from

    if not (path / "outcomes").is_dir() or not (path / "queries").is_dir():
        raise ConfigError(f"--data feedback:{path}: no shadow labels there (queries/, outcomes/)")
    out = []
    for f in sorted((path / "outcomes").glob("*.parquet"), key=lambda p: p.stem.rsplit("-", 1)[-1]):
        o, q = (read_table(path, kind, [f.stem]) for kind in ("outcomes", "queries"))
        roles = dict(zip(o["hardware"].to_pylist(), o["model"].to_pylist(), strict=True))
        if set(roles) != {"local", "cloud"}:
            raise ConfigError(f"{f}: a shadow-label batch has a local and a cloud row per request")
        out.append((f.stem, examples_from(q, o, "feedback", roles["local"], roles["cloud"])))
    if not out:
        raise ConfigError(f"--data feedback:{path}: no shadow-label batch written yet")
    return out


def drift(path: Path, router, window: int = 500) -> dict[str, Any]:
    """Per batch and rolling (the latest `window` labels) AUC / Brier of `router` on them."""
    from localroute.routers.calibration import ranking_figures as figures
    from localroute.routers.examples import to_batch

    rows, ps, ys = [], [], []
    for name, ex in batches(path):
        b = to_batch(ex)
        p, y = router.score(b), np.asarray(b["label"], float)
        ps.append(p)
        ys.append(y)
        rolling_p, rolling_y = np.concatenate(ps)[-window:], np.concatenate(ys)[-window:]
        rows.append(
            {
                "batch": name,
                "labels_so_far": int(sum(len(v) for v in ys)),
                "batch_figures": figures(p, y),
                "rolling": figures(rolling_p, rolling_y),
            }
        )
    return {
        "window": window,
        "batches": rows,
        "all": figures(np.concatenate(ps), np.concatenate(ys)),
    }


def drift_section(d: dict[str, Any], artifact: str) -> str:
    from localroute.report.html import e, fmt, plt, png

    body = "".join(
        f"<tr><td>{e(r['batch'])}</td><td class=num>{r['labels_so_far']}</td>"
        f"<td class=num>{fmt(r['batch_figures']['auc'])}</td>"
        f"<td class=num>{fmt(r['rolling']['auc'])}</td>"
        f"<td class=num>{fmt(r['rolling']['brier'])}</td>"
        f"<td class=num>{fmt(r['rolling']['label_rate'])}</td></tr>"
        for r in d["batches"]
    )
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(8, 3))
    x = [r["labels_so_far"] for r in d["batches"]]
    for key, label in (("auc", "rolling AUC"), ("brier", "rolling Brier")):
        ax.plot(
            x,
            [r["rolling"][key] if r["rolling"][key] is not None else np.nan for r in d["batches"]],
            label=label,
        )
    ax.set_xlabel("shadow labels so far")
    ax.legend(fontsize=7)
    return (
        f"<h2 id='drift'>Drift on shadow labels</h2><p>Router artifact <code>{e(artifact)}</code> "
        f"scored on every shadow-labelled request, batch by batch as serve wrote them; rolling "
        f"over the latest {d['window']} labels. Over all {d['all']['n']} labels: AUC "
        f"{fmt(d['all']['auc'])}, Brier {fmt(d['all']['brier'])}.</p>{png(fig)}"
        "<table><tr><th>batch</th><th>labels so far</th><th>batch AUC</th><th>rolling AUC</th>"
        f"<th>rolling Brier</th><th>rolling label rate</th></tr>{body}</table>"
    )


def run_drift(path: Path, artifact: str, out: Path, window: int = 500) -> dict[str, Any]:
    """metrics.json and report.html of the artifact's drift on the shadow labels under `path`."""
    from localroute.report.html import STYLE
    from localroute.routers import RouterError, load_router

    try:
        router = load_router(artifact)
    except RouterError as exc:
        raise ConfigError(f"evaluate.router_artifact: {exc}") from None
    d = drift(path, router, window)
    d["artifact"] = {"path": str(artifact), "fingerprint": router.fingerprint}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"drift": d}, indent=1) + "\n")
    html = f"<!doctype html><meta charset=utf-8><style>{STYLE}</style>" + drift_section(d, artifact)
    (out / "report.html").write_text(html)
    return d
