"""Ray Data job: profile every pool's model on its own hardware, grade it, write outcome rows.

The query table fans out to one actor pool per configured pool (placed by accelerator type or node
labels, never by a bare GPU count: Ray 2.60 counts Apple Metal as a GPU). Each actor batch
generates, meters energy, grades, and writes its rows as one Parquet file whose name is a digest of
the batch's keys, atomically: a batch Ray retries after a killed worker rewrites the same file, so
nothing is lost or duplicated, and a rerun skips the (query, turn, model, hardware) keys already on
disk. Layout: `<out>/outcomes/<model>--<hardware>--<digest>.parquet`, so `read_table(out,
"outcomes")` and `read_profile_outcomes(out)` both read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from localroute.errors import ConfigError
from localroute.placement import HARDWARE_LABEL, Placement, ray_remote_args_for, unschedulable

TINY = "tiny"  # as a pool's model: build the random-weight tiny decoder (localroute.models.tiny)


@dataclass(frozen=True)
class PoolConfig:
    name: str = "cpu"
    engine: str = "transformers"
    model: str = TINY  # a local path, a model id, or "tiny"
    model_name: str | None = None  # the `model` column; default: the model's directory name
    model_size_b: float | None = None
    hardware: str | None = None  # the `hardware` column; default: the placement's kind
    engine_options: dict[str, Any] = field(default_factory=dict)
    # Fractional CPUs by default: Ray on few cores deadlocks when actors hold every CPU.
    placement: Placement = field(default_factory=lambda: Placement(num_cpus=0.5))
    actors: int = 1
    batch_size: int = 8
    meter: str = "auto"  # auto, zeus, estimated, none
    tdp_w: float | None = None  # for the estimated meter: the package's rated power...
    tdp_cores: int | None = None  # ...over this many logical cores (default: this node's count)
    input_usd_per_m: float | None = None
    output_usd_per_m: float | None = None

    def check(self, where: str) -> None:
        from localroute.energy import METERS
        from localroute.engines import ENGINES

        if self.engine not in ENGINES:
            raise ConfigError(f"{where}.engine: unknown {self.engine!r}; known: {list(ENGINES)}")
        if self.meter not in METERS:
            raise ConfigError(f"{where}.meter: unknown {self.meter!r}; known: {list(METERS)}")
        if self.actors < 1 or self.batch_size < 1:
            raise ConfigError(f"{where}: actors and batch_size must be >= 1")
        if self.tdp_w is not None and self.tdp_w <= 0:
            raise ConfigError(f"{where}.tdp_w must be > 0, got {self.tdp_w}")

    @property
    def model_label(self) -> str:
        if self.model_name:
            return self.model_name
        return "tiny-qwen2-random" if self.model == TINY else Path(self.model).name

    @property
    def hardware_label(self) -> str:
        return self.hardware or self.placement.resolved_kind


@dataclass(frozen=True)
class JudgeConfig:
    engine: str = "openai"
    model: str = "gpt-4o"
    engine_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProfileConfig:
    out: str = "runs/profile"
    data: str | None = None  # a data build; default: the config's data.out
    sources: list[str] | None = None
    split: str | None = "test"
    limit: int | None = None  # queries per source, drawn by a seeded hash
    max_turns: int = 2
    max_tokens: int = 64
    temperature: float = 0.0
    seed: int | None = None  # default: the config's top-level seed
    code_timeout_s: float = 5.0
    judge: JudgeConfig | None = None  # without one, judge-graded rows keep score null
    run_id: str | None = None
    pools: list[PoolConfig] = field(default_factory=lambda: [PoolConfig()])

    def check(self, where: str) -> None:
        names = [p.name for p in self.pools]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"{where}.pools: need at least one pool, names unique; got {names}")
        if self.max_turns < 1 or self.max_tokens < 1:
            raise ConfigError(f"{where}: max_turns and max_tokens must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"{where}.limit must be >= 1, got {self.limit}")


# ---- selecting the work -------------------------------------------------------------------------


def select_queries(data_dir: str | Path, pc: ProfileConfig, seed: int) -> pa.Table:
    """The queries to profile: the configured sources and split, `limit` per source by hash."""
    import pyarrow.compute as pcmp

    from localroute.data.build import read_table

    table = read_table(data_dir, "queries", pc.sources)
    if pc.split:
        table = table.filter(pcmp.equal(table["split"], pc.split))
    if pc.limit:
        keep = []
        for source in sorted(set(table["source"].to_pylist())):
            ids = table.filter(pcmp.equal(table["source"], source))["query_id"].to_pylist()
            keep += sorted(ids, key=lambda q: _digest(f"{seed}:{q}"))[: pc.limit]
        table = table.filter(pcmp.is_in(table["query_id"], pa.array(keep)))
    return table


def done_keys(out_dir: Path, model: str, hardware: str) -> set[tuple[str, int]]:
    """(query_id, turn) already written for this model and hardware."""
    done: set[tuple[str, int]] = set()
    for path in sorted(
        (out_dir / "outcomes").glob(f"{_slug(model)}--{_slug(hardware)}--*.parquet")
    ):
        t = pq.read_table(path, columns=["query_id", "turn", "model", "hardware"])
        for q, turn, m, h in zip(*(t[c].to_pylist() for c in t.column_names), strict=True):
            if m == model and h == hardware:
                done.add((q, turn))
    return done


def pending(queries: pa.Table, done: set[tuple[str, int]], max_turns: int) -> pa.Table:
    """Queries with a turn still to run, with a `skip_turns` column of the turns already done."""
    keep, skips = [], []
    for i, (q, n) in enumerate(
        zip(queries["query_id"].to_pylist(), queries["n_user_turns"].to_pylist(), strict=True)
    ):
        skip = [t for t in range(1, min(n, max_turns) + 1) if (q, t) in done]
        if len(skip) < min(n, max_turns):
            keep.append(i)
            skips.append(skip)
    table = queries.take(pa.array(keep, pa.int64()))
    return table.append_column("skip_turns", pa.array(skips, pa.list_(pa.int16())))


# ---- the worker (one per actor) ----------------------------------------------------------------


class ProfileWorker:
    """Holds one engine and meter; each call answers, meters, grades and writes one batch."""

    def __init__(self, pool: PoolConfig, settings: dict, out_dir: str, run_id: str):
        import ray

        from localroute.energy import make_meter
        from localroute.engines import make_engine

        self.pool = pool
        self.s = settings
        self.out = Path(out_dir)
        self.run_id = run_id
        self.engine = make_engine(
            self.pool.engine, settings["model_path"], **self.pool.engine_options
        )
        self.meter = make_meter(self.pool.meter, self.pool.tdp_w, self.pool.tdp_cores)
        self.judge = None
        if settings.get("judge"):
            from localroute.grading import Judge

            j = settings["judge"]
            self.judge = Judge(make_engine(j["engine"], j["model"], **j["engine_options"]))
        # Where this actor runs: tests check placement against it.
        ctx = ray.get_runtime_context()
        workers = self.out / "workers"
        workers.mkdir(parents=True, exist_ok=True)
        record = {"pool": self.pool.name, "node_id": ctx.get_node_id(), "pid": os.getpid()}
        (workers / f"{self.pool.name}-{os.getpid()}.json").write_text(json.dumps(record))

    def __call__(self, batch: pa.Table) -> pa.Table:
        from localroute.data.schema import OUTCOME_SCHEMA, to_table

        queries = batch.to_pylist()
        try:
            rows = self._run(queries)
        except Exception as exc:  # never crash the job: every turn of the batch gets the error
            err = f"{type(exc).__name__}: {exc}"
            rows = [
                self._row(q, t, None, None, None, err)
                for q in queries
                for t in _turns(q, self.s)
                if t not in (q["skip_turns"] or [])
            ]
        table = to_table(rows, OUTCOME_SCHEMA, f"pool {self.pool.name}")
        self._write(table)
        return pa.table(
            {
                "pool": [self.pool.name] * table.num_rows,
                "latency_s": table["latency_s"],
                "error": table["error"],
            }
        )

    def _run(self, queries: list[dict]) -> list[dict]:
        from localroute.energy.attribution import attribute
        from localroute.energy.sampler import Sampler
        from localroute.engines import GenerationRequest

        rows: list[dict] = []
        answers: dict[str, list[str]] = {q["query_id"]: [] for q in queries}
        max_turn = max(max(_turns(q, self.s), default=0) for q in queries)
        for turn in range(1, max_turn + 1):
            active = [q for q in queries if turn in _turns(q, self.s)]
            requests = [
                GenerationRequest(
                    conversation(q["turns"], turn, answers[q["query_id"]]),
                    max_tokens=self.s["max_tokens"],
                    temperature=self.s["temperature"],
                    seed=self.s["seed"],
                )
                for q in active
            ]
            with Sampler(self.meter) as sampler:
                gens = self.engine.generate(requests)
            energy = [None] * len(gens)
            if len(sampler.samples) > 1 and sampler.seconds >= self.meter.update_period_s:
                energy = attribute(sampler.samples, [g.spans for g in gens]).per_request
                energy = [e if g.spans else None for e, g in zip(energy, gens, strict=True)]
            grades = self._grade(active, gens, turn)
            for q, g, e, gr in zip(active, gens, energy, grades, strict=True):
                answers[q["query_id"]].append(g.text)
                if turn not in (q["skip_turns"] or []):
                    rows.append(self._row(q, turn, g, e, gr, g.error or (gr and gr.error)))
        return rows

    def _grade(self, active: list[dict], gens: list, turn: int) -> list:
        from localroute.grading import Grade, grade, grade_judged

        grades: list = [None] * len(gens)
        judged = []
        for i, (q, g) in enumerate(zip(active, gens, strict=True)):
            if g.error:
                continue
            if q["grading"] == "judge":
                judged.append(i)
                continue
            try:
                ref = turn_reference(q["reference"], turn, q["n_user_turns"])
                grades[i] = grade(q["grading"], g.text, ref, q["choices"], self.s["code_timeout_s"])
            except Exception as exc:
                grades[i] = Grade(None, error=f"grading: {type(exc).__name__}: {exc}")
        if judged and self.judge is not None:
            pairs = [(_user_turn(active[i]["turns"], turn), gens[i].text) for i in judged]
            for i, gr in zip(judged, grade_judged(self.judge, pairs), strict=True):
                grades[i] = gr
        return grades

    def _row(self, q: dict, turn: int, g, energy: float | None, gr, error: str | None) -> dict:
        p = self.pool
        row = {
            "query_id": q["query_id"],
            "source": q["source"],
            "turn": turn,
            "model": p.model_label,
            "model_size_b": p.model_size_b,
            "hardware": p.hardware_label,
            "engine": p.engine,
            "error": error,
            "provenance": "measured",
            "run_id": self.run_id,
            "energy_provenance": self.meter.provenance,
            "energy_scope": self.meter.scope,
        }
        if g is not None:
            timed = g.latency_s is not None
            row |= {
                "tokens_in": g.tokens_in,
                "tokens_out": g.tokens_out,
                "ttft_s": g.ttft_s,
                "tpot_s": g.tpot_s,
                "latency_s": g.latency_s,
                "latency_provenance": "measured" if timed else None,
                "energy_j": energy,
                "answer": g.text,
            }
            if p.input_usd_per_m is not None and g.tokens_in is not None and g.tokens_out:
                row["cost_usd"] = (
                    g.tokens_in * p.input_usd_per_m + g.tokens_out * (p.output_usd_per_m or 0.0)
                ) / 1e6
        if gr is not None:
            row |= {"score": gr.score, "score_raw": gr.score_raw, "correct": gr.correct}
        return row

    def _write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        keys = sorted(zip(table["query_id"].to_pylist(), table["turn"].to_pylist(), strict=True))
        name = outcome_file(self.pool.model_label, self.pool.hardware_label, keys)
        folder = self.out / "outcomes"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.{uuid.uuid4().hex}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, folder / name)  # atomic: a retried batch replaces, never duplicates


def _turns(q: dict, s: dict) -> list[int]:
    return list(range(1, min(q["n_user_turns"], s["max_turns"]) + 1))


def conversation(turns: list[dict], k: int, answers: list[str]) -> list[dict]:
    """Messages up to the k-th user turn; where the source fixes no assistant reply between two
    user turns, the model's own earlier answer goes there."""
    msgs: list[dict] = []
    n_user = 0
    for m in turns:
        if m["role"] == "user":
            n_user += 1
            if n_user > k:
                break
            if msgs and msgs[-1]["role"] == "user":
                msgs.append({"role": "assistant", "content": answers[n_user - 2]})
        msgs.append({"role": m["role"], "content": m["content"]})
    return msgs


def _user_turn(turns: list[dict], k: int) -> str:
    return [m["content"] for m in turns if m["role"] == "user"][k - 1]


def turn_reference(reference: str | None, turn: int, n_user_turns: int) -> str | None:
    """Multi-turn sources store one reference per turn as a JSON list."""
    if reference is None or n_user_turns < 2 or not reference.startswith("["):
        return reference
    try:
        refs = json.loads(reference)
    except json.JSONDecodeError:
        return reference
    return refs[turn - 1] if turn <= len(refs) else None


def outcome_file(model: str, hardware: str, keys: list[tuple[str, int]]) -> str:
    return f"{_slug(model)}--{_slug(hardware)}--{_digest(repr(keys))[:16]}.parquet"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_profile_outcomes(out_dir: str | Path) -> pa.Table:
    """Every outcome row a profile run wrote under `out_dir`, validated against OUTCOME_SCHEMA."""
    from localroute.data.build import read_table

    return read_table(out_dir, "outcomes")


# ---- the driver -------------------------------------------------------------------------------


def resolve_model(pool: PoolConfig, models_dir: Path) -> str:
    if pool.model != TINY:
        return pool.model
    from localroute.models.tiny import build_tiny_decoder

    return str(build_tiny_decoder(models_dir / "tiny"))


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
        # Blocks of a few batches each: enough to keep every actor busy, few enough to be cheap.
        blocks = max(pool.actors, min(-(-todo.num_rows // pool.batch_size), 8 * pool.actors))
        size = -(-todo.num_rows // blocks)
        ds = ray.data.from_arrow([todo.slice(i, size) for i in range(0, todo.num_rows, size)])
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
    """The demo's profiling stage, inside an already started Ray: the tiny random-weight model on
    the CPU pool over a sample of real GSM8K and MMLU test queries from `out_dir/"data"`."""
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
        "note": "the local model is a tiny decoder with RANDOM weights: timings are real, "
        "answers are noise",
    }
    print(
        f"   {result['rows']} outcome rows, median latency "
        f"{result['median_latency_s'] or float('nan'):.3f}s, energy {provenance}"
    )
    return result
