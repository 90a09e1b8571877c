"""Ray Data profiling throughput against the same engine in a bare loop, on the same queries.

The bare loop only generates (one TransformersEngine, batches in order); the Ray Data job also
meters energy, grades every answer and writes the outcome table. Both walls include loading the
model, and every engine gets the same torch thread count (`--threads`, default 1: on a shared
2-core machine two OpenMP threads per engine ran ~35x slower than one). With `--actors 1` the
ratio is Ray Data's overhead on the same engine; more actors add its parallelism. Usage:

    python benchmarks/bench_profile.py --rows 2000 [--actors 1] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def bare_loop(model: str, queries: list[dict], batch_size: int, max_tokens: int, threads: int):
    from localroute.engines import GenerationRequest, make_engine

    t0 = time.perf_counter()
    engine = make_engine("transformers", model, device="cpu", threads=threads)
    n = 0
    for i in range(0, len(queries), batch_size):
        batch = queries[i : i + batch_size]
        requests = [
            GenerationRequest(q["turns"][:1], max_tokens=max_tokens, temperature=0.0) for q in batch
        ]
        n += sum(g.error is None for g in engine.generate(requests))
    return time.perf_counter() - t0, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=8)
    p.add_argument("--actors", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per engine")
    p.add_argument("--num-cpus", type=int, default=4, help="logical CPUs of the local Ray")
    p.add_argument("--data", default=None, help="a data build (default: the shipped one)")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pyarrow as pa

    from localroute.config import RayConfig
    from localroute.data.paths import SHIPPED_DIR
    from localroute.models.tiny import build_tiny_decoder
    from localroute.placement import Placement
    from localroute.ray_runtime import ray_session
    from pipelines.profile import PoolConfig, ProfileConfig, run_profile, select_queries

    data = Path(args.data or SHIPPED_DIR)
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    model = str(build_tiny_decoder(work / "tiny"))
    cores = os.cpu_count() or 1
    threads = args.threads
    pool = PoolConfig(
        name="cpu",
        model=model,
        model_name="tiny",
        engine_options={"device": "cpu", "threads": threads},
        placement=Placement(kind="cpu", num_cpus=0.5),
        actors=args.actors,
        batch_size=args.batch_size,
        tdp_w=65.0,
    )
    pc = ProfileConfig(
        sources=["routellm_mmlu", "routellm_gsm8k"],
        split=None,
        max_turns=1,
        max_tokens=args.max_tokens,
        pools=[pool],
    )
    queries = select_queries(data, pc, seed=0).slice(0, args.rows)
    data_dir = work / "data"
    (data_dir / "queries").mkdir(parents=True)
    import pyarrow.parquet as pq

    pq.write_table(queries, data_dir / "queries" / "bench.parquet")
    rows = queries.to_pylist()

    load = [os.getloadavg()[0]]  # other work on the machine skews both sides: record it
    bare_s, bare_ok = bare_loop(model, rows, args.batch_size, args.max_tokens, threads)
    print(f"bare loop: {bare_ok} rows in {bare_s:.1f}s", file=sys.stderr, flush=True)
    with ray_session(RayConfig(num_cpus=args.num_cpus)):
        run = dataclasses.replace(pc, sources=None)  # the sample written above
        load.append(os.getloadavg()[0])
        summary = run_profile(run, data_dir, work / "out", seed=0, log=lambda *_: None)
    load.append(os.getloadavg()[0])
    ray_s = summary["wall_s"]
    n_ray = sum(summary["rows"].values()) - summary["errors"]  # answered rows, as in bare_ok
    result = {
        "rows": len(rows),
        "bare_loop_s": round(bare_s, 2),
        "bare_rows_per_s": round(bare_ok / bare_s, 2),
        "ray_data_s": round(ray_s, 2),
        "ray_rows_per_s": round(n_ray / ray_s, 2),
        "ratio": round((n_ray / ray_s) / (bare_ok / bare_s), 3),
        "ray_errors": summary["errors"],
        "bare_errors": len(rows) - bare_ok,
        "actors": args.actors,
        "threads_per_actor": threads,
        "batch_size": args.batch_size,
        "max_tokens": args.max_tokens,
        "machine": f"{platform.machine()}, {cores} cores",
        "load_avg_1m_before_bare_ray_after": [round(x, 1) for x in load],
    }
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    pa.default_memory_pool().release_unused()


if __name__ == "__main__":
    main()
