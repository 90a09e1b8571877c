"""Time the vectorised threshold x alpha sweep (localroute.core.sweep) on a 1M-query trace.

The trace is drawn, with replacement, from the real per-query rows of one model pair's test
split (default: RouteLLM MMLU, Mixtral-8x7B vs gpt-4-1106): each drawn query keeps its real
router score, its modelled latency gap (eqs. 6-7 with the evaluate config's figures) and its
per-side quality, latency, energy, FLOPs and dollars. The sweep is 10 alphas x 10 thresholds
(100 operating points) unless told otherwise.

    .venv/bin/python benchmarks/bench_replay.py --data runs/demo/data [--n 1000000] [--repeat 3]
        [--artifact runs/demo/routers/mlp]   # score with a trained router (default: task-prior)

Not a timed test: the figure goes in BENCHMARKS.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="runs/demo/data", help="a data build (localroute data build)")
    ap.add_argument("--config", default="configs/local.yaml")
    ap.add_argument("--source", default="routellm_mmlu")
    ap.add_argument(
        "--router", default="task-prior", help="baseline router whose scores the trace carries"
    )
    ap.add_argument("--artifact", help="a router artifact (localroute train) to score with instead")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--alphas", type=int, default=10)
    ap.add_argument("--thetas", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import dataclasses

    from cli.config import load_config
    from localroute.core.policy import fused_score
    from localroute.core.sweep import sweep
    from pipelines.evaluate import PairSpec
    from pipelines.evaluate.context import load_artifact, make_context
    from pipelines.evaluate.pairs import PairTables

    cfg = load_config(args.config)
    label = "learned" if args.artifact else args.router
    ev = dataclasses.replace(cfg.evaluate, routers=[label])
    art = load_artifact(args.artifact) if args.artifact else None
    quiet = lambda *_: None  # noqa: E731
    ctx = make_context(ev, cfg.seed, Path(args.data), None, quiet, artifact=art)
    spec = next(
        (p for p in [*ev.mmlu, *ev.gsm8k, *ev.savings_pairs] if p.source == args.source),
        PairSpec("bench", args.source, "", "", 0.03),
    )
    d = PairTables(ctx).single_turn(spec, "bench")
    if d is None:
        print(f"error: {args.source} is not in {args.data}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(cfg.seed)
    idx = rng.integers(0, d.n, args.n)
    p = d.scores[label].p[idx]
    gap = d.gap[idx]
    q = {k: (loc[idx], cld[idx]) for k, (loc, cld) in d.quantities().items()}
    alphas = np.linspace(0.0, 2 * max(spec.alpha, 0.01), args.alphas)
    fused_range = np.concatenate([fused_score(p, a, 0.0, gap) for a in (alphas[0], alphas[-1])])
    thetas = np.quantile(fused_range, np.linspace(0.0, 1.0, args.thetas))
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        curves = sweep(p, gap, q, alphas, thetas)
        times.append(time.perf_counter() - t0)
    points = sum(c.theta.size for c in curves)
    share = np.concatenate([c.cloud_share for c in curves])
    print(
        f"trace: {args.n:,} queries drawn from {d.n} real {args.source} test rows "
        f"({spec.local or '?'} vs {spec.cloud or '?'}), router {d.scores[label].router}"
    )
    print(
        f"sweep: {len(alphas)} alphas x {args.thetas} thresholds = {points} operating points, "
        f"{len(q)} accounted quantities each"
    )
    print(
        f"time: best {min(times):.3f} s, median {float(np.median(times)):.3f} s "
        f"over {args.repeat} runs"
    )
    print(f"cloud share across the grid: {share.min():.3f} .. {share.max():.3f}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, numpy {np.__version__}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
