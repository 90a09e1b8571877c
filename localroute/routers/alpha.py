"""alpha with a meaning: the fusion weight of seed 001's eq. 11, chosen on the validation split.

p~ = p - alpha (T_e - T_s); a query goes local iff p~ <= theta. alpha converts seconds of latency
gap into probability, so it is chosen per router and deployment, as seed 001 tunes it per
dataset, under the latency model the deployment decides with (`DeploymentLatency`: the serve
config's preset and link, the deployed models' answer caps and measured per-token times; without
one, seed 001's Table I for the rows' workload). The objective: over a grid of alphas, the
operating point (alpha, theta) with the least mean modelled latency among those whose mean
quality reaches the quality target (a fraction of the way from local-only to cloud-only
quality) among points where p still decides at least `min_p_share` of what it decides at alpha 0
(a point where the latency term alone decides wastes the router); a larger alpha must save more
than `latency_slack` of the smaller one's latency to win. Every
decision goes through `localroute.core.sweep` (hence `localroute.core.policy.fused_score`).

The artifact stores `alpha` beside `threshold` (router.json), and info["alpha"] records the
latency model, the target and the whole sweep (one row per alpha).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from localroute.routers.features import Batch, n_rows

ALPHA_GRID = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)


@dataclass(frozen=True)
class AlphaConfig:
    """`routers.alpha`: how alpha (and with it theta) is chosen on the validation split."""

    quality_target: float = 0.5  # fraction of the way from local-only to cloud-only quality
    grid: list[float] = field(default_factory=lambda: list(ALPHA_GRID))
    link: str = "5g"  # a profile of links.yaml (evaluate.link's default)
    preset: str = "paper-table1"  # latency_models entry of links.yaml: per-token times
    latency_slack: float = 0.05  # a larger alpha must cut mean latency by more than this share
    min_p_share: float = 0.5  # p must still decide this share of what it decides at alpha 0

    def check(self, where: str) -> None:
        from localroute.errors import ConfigError

        if not 0.0 <= self.quality_target <= 1.0:
            raise ConfigError(f"{where}.quality_target must be in [0, 1]")
        if not self.grid or any(not np.isfinite(a) or a < 0 for a in self.grid):
            raise ConfigError(f"{where}.grid must be finite alphas >= 0")


def workload_of(source: str) -> str:
    """The seed 001 workload (Table II/III) a source's response lengths come from."""
    return "mmlu" if "mmlu" in source else "gsm8k" if "gsm8k" in source else "mt-bench-101"


def side_times(
    batch: Batch, source: str | None, cfg: AlphaConfig, deployment=None
) -> tuple[np.ndarray, ...]:
    """(T_s, T_e) per row, prompt and context in words: eqs. 6-7 of the deployment's latency
    model (`DeploymentLatency`) when given, else of cfg.preset for each row's workload (the
    batch's `source` column, else `source`) over cfg.link."""
    from localroute.config import bundled
    from localroute.core.profiles import load_latency_model

    n = n_rows(batch)
    lp = np.asarray(batch.get("prompt_words", np.zeros(n)), np.float64)
    ct = np.asarray(batch.get("context_words", np.zeros(n)), np.float64)
    if deployment is not None:
        model = deployment.prior()
        return np.asarray(model.t_local(lp, ct), float), np.asarray(model.t_cloud(lp, ct), float)
    rows_source = (
        np.asarray(batch["source"], dtype=object)
        if "source" in batch
        else np.full(n, source or "", dtype=object)
    )
    t_local, t_cloud = np.zeros(n), np.zeros(n)
    for wl in sorted({workload_of(str(s)) for s in rows_source}):
        m = np.array([workload_of(str(s)) == wl for s in rows_source])
        model = load_latency_model(bundled("links.yaml"), cfg.preset, wl, cfg.link)
        t_local[m] = model.t_local(lp[m], ct[m])
        t_cloud[m] = model.t_cloud(lp[m], ct[m])
    return t_local, t_cloud


def quality_target(q_local: np.ndarray, q_cloud: np.ndarray, fraction: float) -> float:
    lo, hi = float(np.mean(q_local)), float(np.mean(q_cloud))
    return lo + fraction * (hi - lo)


@dataclass
class AlphaChoice:
    alpha: float
    theta: float
    target: float
    sweep: list[dict[str, Any]] = field(default_factory=list)


def alpha_sweep(
    p: np.ndarray,
    q_local: np.ndarray,
    q_cloud: np.ndarray,
    t_local: np.ndarray,
    t_cloud: np.ndarray,
    fraction: float,
    grid=ALPHA_GRID,
    slack: float = 0.05,
    min_p_share: float = 0.5,
) -> AlphaChoice:
    """Per alpha, the least-latency operating point reaching the quality target; the best
    among those where p still decides (``p_share`` >= ``min_p_share``), a larger alpha winning
    only by more than ``slack`` of the latency (ascending alphas).

    ``p_share``: the point's p-sensitivity (decisions that change when p is replaced by its
    mean) over the most it can be at that cloud share (min(share, 1 - share), reached at alpha
    0, where p alone decides): 1 = p decides as much as it can, 0 = the latency term alone."""
    from localroute.core.policy import p_sensitivity
    from localroute.core.sweep import at_target, sweep

    target = quality_target(q_local, q_cloud, fraction)
    gap = t_cloud - t_local
    q = {"quality": (q_local, q_cloud), "latency_s": (t_local, t_cloud)}
    rows, best = [], None
    for curve in sweep(p, gap, q, sorted(set(map(float, grid)))):
        point = at_target(curve, "quality", target, "latency_s")
        row = {"alpha": curve.alpha}
        if point is not None:
            share = point["cloud_share"]
            most = min(share, 1.0 - share)
            sens = p_sensitivity(p, curve.alpha, gap, point["theta"])
            row.update(
                theta=point["theta"],
                latency_s=point["latency_s"],
                cloud_share=share,
                quality=point["quality"],
                p_sensitivity=sens,
                p_share=min(1.0, sens / most) if most > 0 else 1.0,
            )
            ok = row["p_share"] >= min_p_share or curve.alpha == 0.0
            # near-ties go to the smaller alpha: the router's own ranking decides more there
            if ok and (best is None or point["latency_s"] < best["latency_s"] * (1 - slack) - 1e-3):
                best = row
        rows.append(row)
    if best is None:  # nothing reaches the target: all cloud at alpha 0
        return AlphaChoice(0.0, -np.inf, target, rows)
    return AlphaChoice(float(best["alpha"]), float(best["theta"]), target, rows)


def choose_alpha(router, val: Batch, cfg: AlphaConfig, deployment=None) -> dict[str, Any]:
    """Set router.alpha and router.threshold (theta of the fused score) from `val`, under the
    deployment's latency model when given (what the server will decide with)."""
    from localroute.core.policy import p_sensitivity

    p = router.score(val)
    t_local, t_cloud = side_times(val, router.info.get("source"), cfg, deployment)
    ql = np.asarray(val["q_local"], np.float64)
    qc = np.asarray(val["q_cloud"], np.float64)
    choice = alpha_sweep(
        p,
        ql,
        qc,
        t_local,
        t_cloud,
        cfg.quality_target,
        cfg.grid,
        cfg.latency_slack,
        cfg.min_p_share,
    )
    p_threshold = router.threshold  # the calibration's, on p alone (alpha 0)
    router.alpha = choice.alpha
    theta = choice.theta if np.isfinite(choice.theta) else -1.0  # -1: every query to the cloud
    router.threshold = float(theta)
    sources = sorted({str(s) for s in val.get("source", [router.info.get("source") or ""])})
    info = {
        "alpha": choice.alpha,
        "theta": router.threshold,
        "chosen_on": f"validation split ({n_rows(val)} rows)",
        "rule": "least mean modelled latency reaching the quality target among points where "
        f"p decides >= {cfg.min_p_share:.0%} of what it can (a larger alpha wins only by more "
        f"than {cfg.latency_slack:.0%} of the latency)",
        # the share of val decisions that change when p is replaced by its mean: ~0 means the
        # latency term alone decides at this point
        "p_sensitivity": p_sensitivity(p, choice.alpha, t_cloud - t_local, router.threshold),
        "quality_target_fraction": cfg.quality_target,
        "quality_target": choice.target,
        # theta is on p - alpha (T_e - T_s) under this latency model: a server computing the
        # gap with another model (workload, link) moves every query's p~, so theta with it
        "latency_model": deployment.describe()
        if deployment is not None
        else {
            "preset": cfg.preset,
            "link": cfg.link,
            "workloads": sorted({workload_of(s) for s in sources}),
        },
        "p_threshold": p_threshold,
        "sweep": choice.sweep,
    }
    router.info["alpha"] = info
    return info
