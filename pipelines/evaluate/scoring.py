"""Router scores per pair: the learned router is the artifact; only baselines are fitted here."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from localroute.errors import ConfigError
from pipelines.evaluate.config import PairSpec
from pipelines.evaluate.context import EvalContext

LEARNED = "learned"
Batch = dict[str, np.ndarray]


@dataclass(frozen=True)
class RouterScore:
    """One router's p = P(needs cloud) on a pair's evaluated rows."""

    label: str  # the config's name for it: learned, random, oracle, ...
    router: str  # the registered router name
    p: np.ndarray
    auc: float | None


def finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def auc_of(labels: np.ndarray, p: np.ndarray) -> float | None:
    from localroute.metrics import roc_auc

    return finite(roc_auc(labels, p)) if 0 < labels.sum() < labels.size else None


def score_routers(
    ctx: EvalContext, spec: PairSpec, batch: Batch, fit: Batch | None, fit_val: Batch | None
) -> dict[str, RouterScore]:
    """Score every configured router on ``batch``; a baseline that needs fitting and has no
    fitting rows is skipped with a note."""
    labels = np.asarray(batch["label"]).astype(int)
    out: dict[str, RouterScore] = {}
    for label in ctx.cfg.routers:
        if label == LEARNED:
            if ctx.artifact is None:
                raise ConfigError(
                    "evaluate.router_artifact is not set: evaluate scores the router artifact "
                    "`localroute train` wrote (pass --router-artifact DIR or set "
                    "evaluate.router_artifact)"
                )
            router, name = ctx.artifact.router, ctx.artifact.name
        else:
            from localroute.routers import make_router

            name = label
            router = make_router(name, seed=ctx.seed, **ctx.router_params.get(name, {}))
            if router.trainable:
                if fit is None:
                    ctx.note(f"{spec.source}/{spec.name}: no rows to fit {name} on; skipped")
                    continue
                t0 = time.perf_counter()
                router.fit(fit, fit_val)
                n = len(fit["label"])
                ctx.log(f"      fitted {name} on {n} rows in {time.perf_counter() - t0:.1f} s")
        p = np.asarray(router.score(batch), dtype=float)
        out[label] = RouterScore(label, name, p, auc_of(labels, p))
    return out
