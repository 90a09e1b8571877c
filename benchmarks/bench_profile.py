"""Ray Data profiling throughput against bare loops of the same engine, interleaved.

Three runs per round, their order rotated from round to round, the 1-minute load average printed
before each (this machine is shared):

- `bare16`: a fresh Python process that imports the engine, loads the model, reads the queries
  and answers them 16 at a time in data order: the loop a person would write.
- `bare-same`: the same, handing the engine the pipeline's batches (`--batch-size` rows, which
  the engine packs by tokens exactly as it does under Ray Data): Ray Data's own overhead.
- `ray`: one `run_profile` call in a running local Ray (started once, its start time printed):
  selecting the queries, starting the actor and loading the model, answering, metering, grading
  and writing the outcome table, all inside the timed wall.

Every engine gets the same prompts (the profiler's instructions) and the same torch thread count
(`--threads`, default 1; `--bare-threads` gives the bare loops another count, e.g. the whole
machine against `--actors 2`). The model is the random-weight tiny decoder unless `--model` names
another (e.g. smollm2-135m). Usage:

    python benchmarks/bench_profile.py --rows 2000 [--rounds 3] [--actors 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["routellm_mmlu", "routellm_gsm8k", "mmlu"]  # 29,688 single-turn queries


def requests_for(rows: list[dict], max_tokens: int) -> list:
    """The first-turn requests the profiler sends (pipelines.profile.worker), for the bare loops."""
    from pipelines.profile.worker import turn_request

    settings = {"max_tokens": max_tokens, "temperature": 0.0, "seed": 0}
    return [turn_request(q, 1, [], settings) for q in rows]


def bare_child(args) -> None:
    """The bare loop, run as its own process so that it pays imports and model load as the
    pipeline's actor does."""
    import pyarrow.parquet as pq

    from localroute.engines import make_engine

    engine = make_engine(
        "transformers",
        args.model_path,
        device="cpu",
        threads=args.threads,
        max_batch_size=args.engine_batch,
    )
    requests = requests_for(pq.read_table(args.queries).to_pylist(), args.max_tokens)
    ok = 0
    for i in range(0, len(requests), args.chunk):
        ok += sum(g.error is None for g in engine.generate(requests[i : i + args.chunk]))
    print(json.dumps({"ok": ok}))


def run_bare(args, queries: Path, model_path: str, chunk: int) -> tuple[float, int]:
    cmd = [sys.executable, __file__, "--bare-child", "--queries", str(queries)]
    threads = args.bare_threads or args.threads
    cmd += ["--model-path", model_path, "--chunk", str(chunk), "--threads", str(threads)]
    cmd += ["--engine-batch", str(args.engine_batch), "--max-tokens", str(args.max_tokens)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - t0, json.loads(out.strip().splitlines()[-1])["ok"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128, help="rows per Ray Data batch")
    p.add_argument("--engine-batch", type=int, default=16, help="rows per forward pass")
    p.add_argument("--max-tokens", type=int, default=8)
    p.add_argument("--actors", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per engine")
    p.add_argument("--bare-threads", type=int, help="torch threads of the bare loops (--threads)")
    p.add_argument("--num-cpus", type=int, default=4, help="logical CPUs of the local Ray")
    p.add_argument("--model", default="tiny", help="a registry name (tiny, smollm2-135m)")
    p.add_argument("--json", help="also write the result here")
    # The bare loop's own process (internal).
    p.add_argument("--bare-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--queries", help=argparse.SUPPRESS)
    p.add_argument("--model-path", help=argparse.SUPPRESS)
    p.add_argument("--chunk", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.bare_child:
        return bare_child(args)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pyarrow.parquet as pq

    from localroute.config import RayConfig
    from localroute.data.build import read_table
    from localroute.data.paths import SHIPPED_DIR
    from localroute.models.registry import model_source
    from localroute.placement import Placement
    from localroute.ray_runtime import ray_session
    from pipelines.profile import PoolConfig, ProfileConfig, run_profile

    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    model_path = model_source(args.model, cache_dir=work if args.model == "tiny" else None)
    table = read_table(SHIPPED_DIR, "queries", SOURCES)
    if args.rows > table.num_rows:
        raise SystemExit(f"--rows {args.rows}: the shipped build has {table.num_rows} of {SOURCES}")
    import numpy as np

    order = np.random.default_rng(0).permutation(table.num_rows)[: args.rows]
    queries = table.take(order)  # a seeded mix of the sources, prompt lengths as they come
    (work / "data" / "queries").mkdir(parents=True)
    qfile = work / "data" / "queries" / "bench.parquet"
    pq.write_table(queries, qfile)

    pool = PoolConfig(
        name="cpu",
        model=model_path,
        model_name=args.model,
        engine_options={
            "device": "cpu",
            "threads": args.threads,
            "max_batch_size": args.engine_batch,
        },
        placement=Placement(kind="cpu", num_cpus=0.5),
        actors=args.actors,
        batch_size=args.batch_size,
        tdp_w=65.0,
    )
    pc = ProfileConfig(split=None, max_turns=1, max_tokens=args.max_tokens, pools=[pool])
    cores = os.cpu_count() or 1
    print(f"# {args.rows} rows, model {args.model}, {args.threads} thread(s) per engine "
          f"({args.bare_threads or args.threads} in the bare loops), "
          f"{args.actors} actor(s), Ray batch {args.batch_size}, engine batch {args.engine_batch}, "
          f"{platform.machine()} {cores} cores", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    runs: dict[str, list[dict]] = {"bare16": [], "bare-same": [], "ray": []}
    with ray_session(RayConfig(num_cpus=args.num_cpus)):
        print(f"# local Ray started in {time.perf_counter() - t0:.1f} s (outside every wall)")
        names = list(runs)
        for r in range(args.rounds):
            for name in names[r % 3 :] + names[: r % 3]:
                load = os.getloadavg()[0]
                if name == "ray":
                    out = work / f"out-{r}"
                    t = time.perf_counter()
                    s = run_profile(pc, work / "data", out, seed=0, log=lambda *_: None)
                    wall = time.perf_counter() - t
                    ok = sum(s["rows"].values()) - s["errors"]
                else:
                    chunk = 16 if name == "bare16" else args.batch_size
                    wall, ok = run_bare(args, qfile, model_path, chunk)
                runs[name].append({"wall_s": round(wall, 2), "ok": ok, "load_1m": round(load, 2)})
                print(f"round {r + 1} {name:9s} load {load:5.2f}  {ok} rows in {wall:6.1f} s  "
                      f"{ok / wall:6.1f} rows/s", flush=True)  # fmt: skip
    rate = {k: statistics.median(x["ok"] / x["wall_s"] for x in v) for k, v in runs.items()}
    result = {
        "rows": args.rows,
        "model": args.model,
        "median_rows_per_s": {k: round(v, 2) for k, v in rate.items()},
        "ratio_ray_to_bare_same": round(rate["ray"] / rate["bare-same"], 3),
        "ratio_ray_to_bare16": round(rate["ray"] / rate["bare16"], 3),
        "runs": runs,
        "actors": args.actors,
        "threads_per_engine": args.threads,
        "bare_loop_threads": args.bare_threads or args.threads,
        "batch_size": args.batch_size,
        "engine_batch": args.engine_batch,
        "max_tokens": args.max_tokens,
        "machine": f"{platform.machine()}, {cores} cores",
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"median rows/s: {result['median_rows_per_s']}")
    print(f"ray / bare-same = {result['ratio_ray_to_bare_same']}, "
          f"ray / bare16 = {result['ratio_ray_to_bare16']}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
