"""The report's plots, each read from metrics.json entries; legends outside, axes with units."""

from __future__ import annotations

import math
from typing import Any

from localroute.report.html import COLORS, legend_outside, plt, png


def _nan(xs: list) -> list[float]:
    return [x if x is not None else math.nan for x in xs]


def headline_plot(metrics: dict[str, Any], pairs: list[dict[str, Any]]) -> str:
    """Quality vs cloud share per fusion pair: learned vs random vs oracle (+ fusion at the
    pair's alpha), the two single-side baselines and the matched-accuracy points."""
    entries = [(p["pair"], metrics[p["experiment"]]["pairs"][p["name"]]) for p in pairs]
    if not entries:
        return "<p class=note>No fusion pair was evaluated: nothing to plot.</p>"
    pyplot = plt()
    fig, axes = pyplot.subplots(1, len(entries), figsize=(4.6 * len(entries), 3.8), squeeze=False)
    for ax, (label, pair) in zip(axes[0], entries, strict=True):
        alpha_key = f"{pair['alpha']:g}"
        for r in ("learned", "random", "oracle"):
            entry = pair["routers"].get(r)
            if entry is None or alpha_key not in entry["curves"]:
                continue
            c = entry["curves"][alpha_key]
            ax.plot(
                _nan(c["cloud_share"]),
                _nan(c["quality"]),
                color=COLORS[r],
                label=f"{r} ({entry['router']}) + fusion",
            )
            pt = (entry.get("matched") or {}).get("point")
            if pt:
                ax.plot([pt["cloud_share"]], [pt["quality"]], "o", color=COLORS[r], ms=6)
        for base, marker in (("local_only", "s"), ("cloud_only", "^")):
            b = pair["baselines"][base]
            ax.plot(
                [b["cloud_share"]], [b["quality"]], marker, color="k", label=base.replace("_", "-")
            )
        target = next(iter(pair["routers"].values()), {}).get("matched", {}).get("quality_target")
        if target is not None:
            ax.axhline(target, color="grey", lw=0.6, ls="--", label="matched accuracy")
            ax.plot([], [], "o", color="grey", label="least cloud share at matched accuracy")
        ax.set_title(f"{label} (alpha = {alpha_key} /s)", fontsize=9)
        ax.set_xlabel("cloud share (fraction of queries sent to the cloud)")
        ax.set_ylabel("accuracy (mean quality, 0-1)")
    legend_outside(axes[0][-1])
    return png(fig)


def single_turn_plot(name: str, pair: dict[str, Any]) -> str:
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(11, 4))
    alpha_key = f"{pair['alpha']:g}"
    for label, r in pair["routers"].items():
        color = COLORS.get(label)
        for key, style in ((alpha_key, "-"), ("0", ":")):
            c = r["curves"].get(key)
            if c is None or (key == "0" and alpha_key == "0" and style == ":"):
                continue
            lab = f"{label} ({r['router']}) + fusion a={key}" if key != "0" else f"{label} a=0"
            axes[0].plot(_nan(c["latency_s"]), c["quality"], style, color=color, label=lab)
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
    axes[0].set_ylabel("accuracy (mean quality, 0-1)")
    axes[0].set_title(f"{name}: accuracy vs latency (seed 001 Fig. 3/4)")
    axes[1].set_xlabel("cloud share (fraction of queries sent to the cloud)")
    axes[1].set_ylabel("accuracy (mean quality, 0-1)")
    axes[1].set_title(f"accuracy vs cloud share at alpha={alpha_key} /s (Fig. 5)")
    handles, labels = axes[0].get_legend_handles_labels()  # axes[0] carries every label
    axes[1].legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return png(fig)


def mtbench_plot(m: dict[str, Any]) -> str:
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(11, 4))
    for label, r in m["routers"].items():
        color = COLORS.get(label)
        for mode, style in (("context_aware", "-"), ("context_agnostic", "--")):
            c = r[mode]
            lab = f"{label} ({r['router']}) {'w/' if mode == 'context_aware' else 'w/o'} context"
            for ax, x in ((axes[0], c["latency_s"]), (axes[1], c["cloud_share"])):
                ax.plot(_nan(x), c["score_raw"], style, color=color, label=lab, marker=".", ms=3)
    axes[0].set_xlabel("mean latency per turn (s, modelled, incl. re-prefill on switches)")
    axes[0].set_ylabel("MT-Bench judge score (1-10)")
    axes[0].set_title("MT-Bench per turn: score vs latency (seed 001 Fig. 6)")
    axes[1].set_xlabel("cloud share (fraction of turns sent to the cloud)")
    axes[1].set_ylabel("MT-Bench judge score (1-10)")
    axes[1].set_title("score vs cloud share")
    legend_outside(axes[1])
    return png(fig)


def savings_plot(rows: list[dict[str, Any]]) -> str:
    pick = [
        r
        for r in rows
        if r.get("reached")
        and (r["policy"].startswith("learned") or r["policy"].startswith("oracle"))
    ]
    if not pick:
        return "<p class='note'>No router reached the matched accuracy: nothing to plot.</p>"
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(11, 3.8))
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
    legend_outside(ax, fontsize=8)
    ax.set_title("Savings against cloud-only at matched accuracy (seed 000)")
    return png(fig)
