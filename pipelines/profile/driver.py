"""The driver: place one actor pool per configured pool, stream the work through them, report
progress; and the demo's profiling stage."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from localroute.errors import ConfigError
from localroute.placement import HARDWARE_LABEL, ray_remote_args_for, unschedulable
from pipelines.profile.config import TINY, PoolConfig, ProfileConfig
from pipelines.profile.work import (
    done_keys,
    pending,
    read_profile_outcomes,
    select_queries,
    write_outcomes,
)
from pipelines.profile.worker import ProfileWorker


def resolve_model(pool: PoolConfig, models_dir: Path) -> str:
    """A registry name resolves to its directory (tiny under the run's `models_dir`, the others
    converted once into the user cache); a path or hub id passes through; else a ConfigError."""
    from localroute.models.registry import model_source

    return model_source(pool.model, cache_dir=models_dir if pool.model == TINY else None)


def remote_args(pool: PoolConfig, nodes: list[dict]) -> dict[str, Any]:
    """Ray options placing one worker of `pool` (localroute.placement); refuses a pool no node
    can host, rather than letting its actors wait forever."""
    args = ray_remote_args_for(pool.placement)
    if not any(HARDWARE_LABEL in (n.get("Labels") or {}) for n in nodes):
        # An unlabelled instance (a bare `ray.init()`): no node says its kind, so none can be
        # required; a labelled cluster always enforces it.
        args["label_selector"].pop(HARDWARE_LABEL, None)
        nodes = [
            {
                **n,
                "Labels": {**(n.get("Labels") or {}), HARDWARE_LABEL: pool.placement.resolved_kind},
            }
            for n in nodes
        ]
    problem = unschedulable({pool.name: pool.placement}, nodes)
    if problem:
        raise ConfigError(f"profile pool {pool.name}: {problem[pool.name]}")
    return args


def run_profile(
    pc: ProfileConfig, data_dir: str | Path, out_dir: str | Path, seed: int, log=print
) -> dict:
    """Profile every pool over the selected queries (Ray must be up); returns a summary."""
    import ray.data

    out = Path(out_dir).resolve()
    (out / "outcomes").mkdir(parents=True, exist_ok=True)
    run_id = pc.run_id or f"profile-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    queries = select_queries(data_dir, pc, seed)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    settings = {
        "max_tokens": pc.max_tokens,
        "temperature": pc.temperature,
        "seed": pc.seed if pc.seed is not None else seed,
        "max_turns": pc.max_turns,
        "code_timeout_s": pc.code_timeout_s,
        "judge": asdict(pc.judge) if pc.judge else None,
    }
    streams, expected = [], {}
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    for pool in pc.pools:
        todo = pending(queries, done_keys(out, pool.model_label, pool.hardware_label), pc.max_turns)
        n_turns = sum(min(n, pc.max_turns) for n in todo["n_user_turns"].to_pylist()) - sum(
            len(s) for s in todo["skip_turns"].to_pylist()
        )
        expected[pool.name] = n_turns
        log(f"   pool {pool.name}: {pool.model_label} on {pool.hardware_label}, {n_turns} to run")
        if not todo.num_rows:
            continue
        # One block per batch, built here: from_arrow would first run a Ray task per block for
        # its metadata (a worker process to start, ~1.5 s on 2 cores) before any actor starts.
        blocks = -(-todo.num_rows // pool.batch_size)
        ds = ray.data.from_items(todo.to_pylist(), override_num_blocks=blocks)
        streams.append(
            ds.map_batches(
                ProfileWorker,
                fn_constructor_kwargs={
                    "pool": pool,
                    "settings": {**settings, "model_path": resolve_model(pool, out / "models")},
                    "out_dir": str(out),
                    "run_id": run_id,
                },
                batch_size=pool.batch_size,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=pool.actors),
                **remote_args(pool, nodes),
            )
        )
    done = {name: 0 for name in expected}
    errors = 0
    t0 = time.perf_counter()
    if streams:
        ds = streams[0].union(*streams[1:]) if len(streams) > 1 else streams[0]
        last = 0.0
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            if not batch.num_rows:
                continue
            # Written here, while the actors answer the next batches.
            write_outcomes(out, batch.drop_columns(["pool"]))
            for name in batch["pool"].to_pylist():
                done[name] += 1
            errors += sum(e is not None for e in batch["error"].to_pylist())
            if time.perf_counter() - last > 2.0:
                last = time.perf_counter()
                log("   progress: " + ", ".join(f"{n} {done[n]}/{expected[n]}" for n in done))
    wall = time.perf_counter() - t0
    log("   done: " + ", ".join(f"{n} {done[n]}/{expected[n]}" for n in done) + f" in {wall:.1f}s")
    return {"run_id": run_id, "out": str(out), "rows": done, "errors": int(errors), "wall_s": wall}


def demo_stage(cfg, out_dir: Path) -> dict:
    """The demo's profiling stage, inside an already started Ray: the configured local model
    (SmolLM2-135M-Instruct in configs/local.yaml) on the CPU pool over a seeded sample of real
    GSM8K and MMLU test queries from `out_dir/"data"`, graded for real."""
    import statistics

    pc = cfg.profile
    if "profile" not in cfg.sections:  # no section in the file: a small default sample
        pc = ProfileConfig(sources=["routellm_gsm8k", "routellm_mmlu"], limit=12, max_tokens=16)
    out = Path(out_dir) / "profile"
    print(f"== Ray Data: profiling {[p.model_label for p in pc.pools]} into {out}")
    summary = run_profile(pc, Path(out_dir) / "data", out, cfg.seed)
    table = read_profile_outcomes(out)
    latencies = sorted(v for v in table["latency_s"].to_pylist() if v is not None)
    provenance = sorted({p for p in table["energy_provenance"].to_pylist() if p})
    result = {
        "rows": table.num_rows,
        "written": str(out / "outcomes"),
        "run_id": summary["run_id"],
        "errors": summary["errors"],
        "median_latency_s": statistics.median(latencies) if latencies else None,
        "energy_provenance": provenance,
        "models": sorted(set(table["model"].to_pylist())),
        "note": "; ".join(_model_note(p.model) for p in pc.pools),
    }
    print(
        f"   {result['rows']} outcome rows, median latency "
        f"{result['median_latency_s'] or float('nan'):.3f}s, energy {provenance}"
    )
    return result


def _model_note(model: str) -> str:
    """What the report must say plainly about a profiled model's answers."""
    if model == TINY:
        return "tiny: a decoder with RANDOM weights: timings are real, answers are noise"
    if model == "smollm2-135m":
        return (
            "SmolLM2-135M-Instruct: a real pretrained model whose answers are real text, but it is "
            "at chance on these benchmarks (MMLU ~0.25, GSM8K ~0): a stand-in for a weak edge model"
        )
    return f"{model}: measured on this machine"
