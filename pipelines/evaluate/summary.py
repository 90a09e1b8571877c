"""The at-a-glance summary: per fusion pair, the deployed operating point first, then one line
per policy at matched accuracy.

Built from the experiments' own entries (nothing recomputed), so every number it shows is one
metrics.json already holds elsewhere: first the pair's ``as_deployed`` rows (the serve config's
operating point replayed through the server's controller, beside random and the oracle at the
same cloud share); then cloud-only and local-only, and each router + fusion at its ``matched``
point (the least cloud share reaching cloud-only accuracy minus ``accuracy_tolerance``, at the
pair's alpha).
"""

from __future__ import annotations

from typing import Any

SUMMARY_KEYS = ("quality", "cloud_share", "latency_s", "energy_j", "cost_usd")
SAVED_KEYS = ("latency_s", "energy_j", "cost_usd")
FUSION_KEYS = ("fusion_mmlu", "fusion_gsm8k")
ROUTER_ORDER = ("learned", "random", "oracle")


def _line(pair: str, policy: str, router: str | None, pt: dict | None, saved: dict | None) -> dict:
    row: dict[str, Any] = {
        "pair": pair,
        "policy": policy,
        "router": router,
        "reached": pt is not None,
    }
    for k in SUMMARY_KEYS:
        row[k] = None if pt is None else pt.get(k)
    row["savings_vs_cloud_only"] = {k: (saved or {}).get(k) for k in SAVED_KEYS}
    return row


def summarise(metrics: dict[str, Any]) -> dict[str, Any]:
    """``{"rows": [...], "pairs": [...]}``: per fusion pair, cloud-only, local-only and each
    router + fusion (learned, random, oracle first) at matched accuracy."""
    rows, pairs = [], []
    for key in FUSION_KEYS:
        for name, pair in (metrics.get(key) or {}).get("pairs", {}).items():
            label = f"{key}/{name}"
            base = pair["baselines"]
            any_matched = next(iter(pair["routers"].values()), {}).get("matched") or {}
            pairs.append(
                {
                    "pair": label,
                    "experiment": key,
                    "name": name,
                    "source": pair["source"],
                    "local": pair["local"],
                    "cloud": pair["cloud"],
                    "alpha": pair["alpha"],
                    "transfer": bool(pair.get("transfer")),
                    "n_test": pair["n_test"],
                    "quality_target": any_matched.get("quality_target"),
                }
            )
            cloud, local = base["cloud_only"], base["local_only"]
            deployed = pair.get("as_deployed") or {}
            for policy, pt in (deployed.get("rows") or {}).items():
                if policy in ("cloud-only", "local-only"):
                    continue  # the same figures as the baselines below
                router = (
                    pair["routers"].get("learned", {}).get("router")
                    if policy == "as deployed"
                    else None
                )
                rows.append(_line(label, policy, router, pt, _saved(pt, cloud)))
            rows.append(_line(label, "cloud-only", None, cloud, _saved(cloud, cloud)))
            rows.append(_line(label, "local-only", None, local, _saved(local, cloud)))
            order = sorted(
                pair["routers"],
                key=lambda r: ROUTER_ORDER.index(r) if r in ROUTER_ORDER else len(ROUTER_ORDER),
            )
            for r in order:
                entry = pair["routers"][r]
                m = entry.get("matched") or {}
                rows.append(
                    _line(
                        label,
                        f"{r} + fusion",
                        entry["router"],
                        m.get("point"),
                        m.get("savings_vs_cloud_only"),
                    )
                )
    return {
        "matched_accuracy": "cloud-only accuracy - evaluate.accuracy_tolerance; routers + fusion "
        "at their alpha (the pair's when configured, else the learned router's artifact alpha, "
        "else Table I's), the least cloud share reaching it",
        "pairs": pairs,
        "rows": rows,
    }


def _saved(policy: dict, baseline: dict) -> dict[str, float | None]:
    from localroute.core.accounting import savings

    return savings(policy, baseline)
