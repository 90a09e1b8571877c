"""The Ray Data worker: one engine and meter per actor; each batch is answered turn by turn,
metered and graded, and returned as outcome rows (the driver writes them: driver.run_profile).
The batch logic (BatchProfiler) needs no Ray, so benchmarks/gpu_check.py reuses it bare."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa

from pipelines.profile.config import PoolConfig


class BatchProfiler:
    """Answers, meters and grades one batch of queries and returns its outcome rows (with a
    `pool` column), given an engine and a meter. It needs no Ray: `ProfileWorker` is it as a Ray
    Data actor, and benchmarks/gpu_check.py runs it bare on a machine without Ray."""

    def __init__(self, pool: PoolConfig, settings: dict, run_id: str, engine, meter, judge=None):
        self.pool = pool
        self.s = settings
        self.run_id = run_id
        self.engine = engine
        self.meter = meter
        self.judge = judge

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
        return table.append_column("pool", pa.array([self.pool.name] * table.num_rows))

    def _run(self, queries: list[dict]) -> list[dict]:
        from localroute.energy.attribution import attribute
        from localroute.energy.sampler import Sampler

        rows: list[dict] = []
        answers: dict[str, list[str]] = {q["query_id"]: [] for q in queries}
        max_turn = max(max(_turns(q, self.s), default=0) for q in queries)
        for turn in range(1, max_turn + 1):
            active = [q for q in queries if turn in _turns(q, self.s)]
            requests = [turn_request(q, turn, answers[q["query_id"]], self.s) for q in active]
            with Sampler(self.meter) as sampler:
                gens = self._generate(requests)
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

    def _generate(self, requests: list) -> list:
        """The engine's answers. A request that failed in a batch of several is answered again
        on its own: an engine may fail a whole batch for one request (vLLM gives every request
        the error when one prompt exceeds the context window; a packed batch shares its call's
        fate), so only a request that fails alone keeps its error."""
        from localroute.engines import Generation

        try:
            gens = self.engine.generate(requests)
        except Exception as exc:
            gens = [Generation(text="", error=f"{type(exc).__name__}: {exc}") for _ in requests]
        if len(requests) == 1:
            return gens
        return [
            self._generate([r])[0] if g.error else g for r, g in zip(requests, gens, strict=True)
        ]

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


class ProfileWorker(BatchProfiler):
    """One engine and meter per Ray Data actor; each call answers, meters and grades one batch.
    Writing is left to the driver, off this actor's critical path (the engine starts the next
    batch while the driver writes this one)."""

    def __init__(self, pool: PoolConfig, settings: dict, out_dir: str, run_id: str):
        import ray

        from localroute.energy import make_meter
        from localroute.engines import make_engine

        judge = None
        if settings.get("judge"):
            from localroute.grading import Judge

            j = settings["judge"]
            judge = Judge(make_engine(j["engine"], j["model"], **j["engine_options"]))
        super().__init__(
            pool,
            settings,
            run_id,
            make_engine(pool.engine, settings["model_path"], **pool.engine_options),
            make_meter(pool.meter, pool.tdp_w, pool.tdp_cores),
            judge,
        )
        # Where this actor runs: tests check placement against it.
        ctx = ray.get_runtime_context()
        workers = Path(out_dir) / "workers"
        workers.mkdir(parents=True, exist_ok=True)
        record = {"pool": pool.name, "node_id": ctx.get_node_id(), "pid": os.getpid()}
        (workers / f"{pool.name}-{os.getpid()}.json").write_text(json.dumps(record))


def turn_request(q: dict, turn: int, answers: list[str], s: dict):
    """The request the profiler sends for a query's `turn`: its conversation so far (the model's
    own earlier answers in between) with the answer instructions of its grading, under the run's
    settings `s` (max_tokens, temperature, seed)."""
    from localroute.engines import GenerationRequest
    from localroute.grading.prompts import instruct

    return GenerationRequest(
        instruct(conversation(q["turns"], turn, answers), q["grading"], q["choices"]),
        max_tokens=s["max_tokens"],
        temperature=s["temperature"],
        seed=s["seed"],
    )


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
