"""The report's first rows: the deployment's operating point replayed over a pair's test traffic.

The artifact's router scores the test rows; the serve config's operating point (alpha, theta or
a target-share rule, resolved by `localroute.core.operating_point`, the precedence the server
uses) and the deployed models' latency model (`DeploymentLatency`) decide them through
`localroute.core.controller.replay`, the server's own controller, row by row in arrival order
(the target tracker updating online). The decisions are then accounted with the pair's own
per-query outcomes, beside random and the oracle at the same cloud share and both sides alone.
A pair the artifact was not trained for is labelled ``transfer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from localroute.core.operating_point import DeploymentLatency, TargetShare
    from pipelines.evaluate.context import EvalContext
    from pipelines.evaluate.pairs import PairTable

LEARNED = "learned"


@dataclass(frozen=True)
class DeployedSpec:
    """What the serve config fixes: the deployed models' latency inputs and its overrides."""

    latency: DeploymentLatency
    alpha: float | None = None
    theta: float | None = None
    target: TargetShare | None = None

    @classmethod
    def from_serve(cls, serve: Any) -> DeployedSpec | None:
        """From a `serve:` config section (anything with deployment_latency()); None without."""
        if serve is None:
            return None
        return cls(serve.deployment_latency(), serve.alpha, serve.theta, serve.target())


def is_transfer(table: PairTable, ctx: EvalContext) -> bool:
    """True when the artifact was trained on another source or for other models."""
    art = ctx.artifact
    if art is None:
        return False
    info = art.router.info
    pairs = info.get("pairs") or {}
    if pairs:  # trained on several sources, each for its pair
        trained = pairs.get(table.spec.source)
        return trained is None or tuple(trained) != (table.spec.local, table.spec.cloud)
    same = (art.source, art.local, art.cloud) == (
        table.spec.source,
        table.spec.local,
        table.spec.cloud,
    )
    return not same


def _at_share(order_key: np.ndarray, share: float) -> np.ndarray:
    """1 for the ``share`` of rows with the largest key (cloud), 0 for the rest."""
    n = order_key.size
    k = int(round(share * n))
    cloud = np.zeros(n, np.int8)
    if k:
        cloud[np.argsort(-order_key, kind="stable")[:k]] = 1
    return cloud


def deployed_replay(table: PairTable, ctx: EvalContext):
    """(operating point, Replay): the artifact's p for each test row decided in arrival order by
    a fresh RouteController with the serve config's operating point and the deployed models'
    latency prior, exactly as a server that just started would; None when nothing is deployed
    (no artifact or no serve config)."""
    from localroute.core.controller import RouteController, replay
    from localroute.core.operating_point import resolve_operating_point

    spec: DeployedSpec | None = ctx.deployed
    if spec is None or ctx.artifact is None or LEARNED not in table.scores:
        return None
    point = resolve_operating_point(
        ctx.artifact.router, alpha=spec.alpha, theta=spec.theta, target=spec.target
    )
    p = table.scores[LEARNED].p
    lp, ct = table.col("prompt_words"), table.col("context_words")
    return point, replay(RouteController(point, spec.latency.prior()), p, lp, ct)


def as_deployed(table: PairTable, ctx: EvalContext) -> dict[str, Any] | None:
    """The deployed operating point on this pair's test rows, accounted with the pair's own
    per-query outcomes; None when nothing is deployed."""
    from localroute.core.accounting import totals
    from localroute.core.policy import p_sensitivity

    replayed = deployed_replay(table, ctx)
    if replayed is None:
        return None
    assert table.local is not None and table.cloud is not None
    point, r = replayed
    spec: DeployedSpec = ctx.deployed
    p = table.scores[LEARNED].p
    share = r.cloud_share
    # random at the same share: the expectation over random choices of that share
    local_only = totals(np.zeros(table.n, np.int8), table.local, table.cloud)
    cloud_only = totals(np.ones(table.n, np.int8), table.local, table.cloud)
    rand = {k: (1 - share) * local_only[k] + share * cloud_only[k] for k in local_only}
    gain = table.col("q_cloud") - table.col("q_local")
    rows = {
        "as deployed": totals(r.decision, table.local, table.cloud),
        "random at the deployed share": rand,
        "oracle at the deployed share": totals(_at_share(gain, share), table.local, table.cloud),
        "cloud-only": cloud_only,
        "local-only": local_only,
    }
    gap = r.t_cloud - r.t_local
    return {
        "operating_point": point.to_dict(),
        "latency_model": spec.latency.describe(),
        "transfer": is_transfer(table, ctx),
        "cloud_share": share,
        "theta_final": float(r.theta[-1]) if r.theta.size else None,
        "p_sensitivity": p_sensitivity(p, point.alpha, gap, float(np.median(r.theta))),
        "rows": rows,
        "replay": "localroute.core.controller.replay: the server's controller, in arrival "
        "order (tracker online), the deployed models' latency prior (no live estimates, no "
        "queue); quality, latency, energy and cost from this pair's per-query outcomes",
    }
