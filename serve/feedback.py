"""Shadow labels from live traffic (TrafficBench's loop, issue 21): for a sampled share of
requests, after the user's answer is sent, the side not chosen is asked too, both answers are
graded (by the request's reference, else by an LLM judge through the cloud API), and one
labelled example is appended to `feedback.out` as a small data build (queries/ and outcomes/,
the project's schemas, provenance `feedback`) that `localroute train --data feedback:DIR` reads.

Off the request's path by construction: `offer` never blocks (a bounded queue; full, a per-minute
cap or the spend budget: the job is dropped and counted), the worker runs the shadow call and
the grading in the background, a failure leaves no row, and a batch is written atomically (a
temporary file renamed into place; queries before outcomes, so no outcome row lacks its query).
The served router's calibrated p of each labelled request feeds a rolling AUC / Brier score
(drift) for /metrics and /healthz. No key and, with `store_text: false`, no prompt or answer text
is written (rows keep a hash and word counts: drift and counts only, not trainable text).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localroute.errors import ConfigError

log = logging.getLogger("ray.serve")
OTHER = {"local": "cloud", "cloud": "local"}


@dataclass(frozen=True)
class FeedbackConfig:
    """`serve.feedback`: shadow labelling of live traffic (off by default)."""

    enabled: bool = False
    sample: float = 0.1  # share of requests shadowed (seeded draw)
    seed: int = 0
    max_per_minute: int = 60
    budget_tokens: int | None = 200_000  # shadow + judge tokens, all sides; None: no cap
    queue: int = 64  # jobs waiting; beyond it they are dropped and counted
    out: str = "runs/feedback"
    flush_rows: int = 16  # labelled requests per written batch (the rest at replica shutdown)
    store_text: bool = True  # false: no prompt or answer text at rest (a hash, word counts)
    drift_window: int = 500  # latest labels the rolling AUC / Brier score is computed on
    judge_model: str | None = None  # None: the cloud model judges unreferenced requests

    def check(self, where: str) -> None:
        if not 0.0 <= self.sample <= 1.0:
            raise ConfigError(f"{where}.sample must be in [0, 1], got {self.sample}")
        if self.max_per_minute < 1 or self.queue < 1 or self.flush_rows < 1:
            raise ConfigError(f"{where}: max_per_minute, queue and flush_rows must be >= 1")
        if self.budget_tokens is not None and self.budget_tokens < 0:
            raise ConfigError(f"{where}.budget_tokens must be >= 0")


@dataclass
class ShadowJob:
    """One served request to shadow: what was asked, who answered what, the router's p."""

    messages: list[dict[str, str]]
    payload: dict[str, Any]
    served: str
    answer: str
    p: float
    task: str | None = None
    reference: str | None = None
    grading: str | None = None
    choices: list[str] | None = None
    tokens: dict[str, int] = field(default_factory=dict)


def _cloud_price(model: str) -> tuple[float, float, str] | None:
    """($/M input, $/M output, provenance) of the cloud model in configs/prices.yaml."""
    from localroute.config import bundled
    from localroute.core.prices import load_prices

    try:
        prices = load_prices(bundled("prices.yaml"))
    except Exception as exc:  # noqa: BLE001 - unpriced (null dollars) rather than no labels
        log.warning("shadow spend unpriced: %s", exc)
        return None
    tin, tout = prices.get(model, "input_usd_per_m"), prices.get(model, "output_usd_per_m")
    if tin is None or tout is None or tin.value is None or tout.value is None:
        return None
    return float(tin.value), float(tout.value), tin.provenance


def job_for(req, headers, served: str, reply: str, p: float, stats: dict | None) -> ShadowJob:
    """The job of one served request: its reference, if any, from `x-localroute-reference`
    (graded by `x-localroute-grading`, default normalised) or the body's `metadata`."""
    meta = req.extra.get("metadata") if isinstance(req.extra.get("metadata"), dict) else {}
    stats = stats or {}
    return ShadowJob(
        messages=req.messages,
        payload=req.payload(),
        served=served,
        answer=reply,
        p=p,
        task=headers.get("x-localroute-task"),
        reference=headers.get("x-localroute-reference") or meta.get("reference"),
        grading=headers.get("x-localroute-grading") or meta.get("grading"),
        tokens={k: stats[k] for k in ("tokens_in", "tokens_out") if stats.get(k) is not None},
    )


def rolling_drift(pairs: deque) -> dict[str, float | None]:
    """AUC and Brier score of the served p against the latest shadow labels, and their count."""
    from localroute.routers.calibration import ranking_figures

    return ranking_figures([a for a, _ in pairs], [b for _, b in pairs])


class ShadowLabeller:
    """The sampler, the bounded queue, the background worker and the batch writer."""

    def __init__(self, cfg: FeedbackConfig, dispatch, cloud, models: dict[str, str], run_id: str):
        self.cfg, self.dispatch, self.cloud, self.models = cfg, dispatch, cloud, models
        self.run_id = run_id
        self.rng = random.Random(cfg.seed)
        self.out = Path(cfg.out)
        self.queue: asyncio.Queue[ShadowJob] = asyncio.Queue(cfg.queue)
        self.counts = dict.fromkeys(
            ("offered", "sampled", "labelled", "written", "dropped_full", "dropped_rate",
             "dropped_budget", "failed", "write_failed"), 0
        )  # fmt: skip
        self.tokens = 0  # shadow + judge tokens spent (the providers' usage counts: measured)
        self.usd = 0.0  # of which the cloud's, priced by configs/prices.yaml (None: unpriced)
        self.price = _cloud_price(models["cloud"])
        self.minute: deque[float] = deque()
        self.drift: deque[tuple[float, int]] = deque(maxlen=cfg.drift_window)
        self.rows: list[tuple[dict, list[dict]]] = []
        self._worker: asyncio.Task | None = None

    # ------------------------------------------------------------------ on the request's path

    def offer(self, job: ShadowJob) -> str:
        """Sample and enqueue; never waits. Returns what happened (for counts and tests)."""
        self.counts["offered"] += 1
        if self.rng.random() >= self.cfg.sample:
            return "unsampled"
        self.counts["sampled"] += 1
        now = time.monotonic()
        while self.minute and now - self.minute[0] > 60.0:
            self.minute.popleft()
        if len(self.minute) >= self.cfg.max_per_minute:
            return self._drop("dropped_rate")
        if self.cfg.budget_tokens is not None and self.tokens >= self.cfg.budget_tokens:
            return self._drop("dropped_budget")
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            return self._drop("dropped_full")
        self.minute.append(now)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())
        return "queued"

    async def offer_after(self, job: ShadowJob) -> None:
        """`offer` on the replica's event loop (Starlette runs an async background task there,
        after the response is sent; a sync one would run in a thread)."""
        self.offer(job)

    def _drop(self, why: str) -> str:
        self.counts[why] += 1
        return why

    # ------------------------------------------------------------------ in the background

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self.label(job)
            except Exception as exc:  # noqa: BLE001 - a failed label leaves no row
                self.counts["failed"] += 1
                log.warning("shadow label failed: %s", type(exc).__name__)
            finally:
                self.queue.task_done()
            if len(self.rows) >= self.cfg.flush_rows:
                await asyncio.to_thread(self.flush)

    async def label(self, job: ShadowJob) -> bool:
        """Ask the other side, grade both answers, keep one labelled example; False: no row."""
        other = OTHER[job.served]
        out = await self.dispatch.call(other, job.payload)
        if "error" in out:
            self.counts["failed"] += 1
            return False
        self._spend(out, cloud=other == "cloud")
        answers = {job.served: job.answer, other: out.get("text") or ""}
        scores = {side: await self._score(job, text) for side, text in answers.items()}
        if any(s is None for s in scores.values()):
            self.counts["failed"] += 1  # ungraded (a judge that gave no rating): no row
            return False
        label = int(scores["local"] < scores["cloud"])  # local not good enough ("ge" rule)
        self.drift.append((float(job.p), label))
        self.rows.append(self._rows(job, answers, scores, {other: out, job.served: job.tokens}))
        self.counts["labelled"] += 1
        return True

    async def _score(self, job: ShadowJob, answer: str) -> float | None:
        if job.reference is not None:
            from localroute.grading import grade

            return grade(job.grading or "normalised", answer, job.reference, job.choices).score
        from localroute.grading.judge import PROMPT, SYSTEM, parse_rating

        question = job.messages[-1]["content"]
        prompt = PROMPT.format(question=question, answer=answer)
        payload = {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": prompt},
            ],
            "max_tokens": 512,
            "temperature": 0.0,
            "seed": None,
        }
        if self.cfg.judge_model:
            payload["model"] = self.cfg.judge_model
        out = await self.cloud.generate(payload)
        if "error" in out:
            return None
        self._spend(out, cloud=True)
        rating = parse_rating(out.get("text") or "")
        return None if rating is None else (rating - 1) / 9

    def _spend(self, out: dict, cloud: bool) -> None:
        tin, tout = int(out.get("tokens_in") or 0), int(out.get("tokens_out") or 0)
        self.tokens += tin + tout
        if cloud and self.price is not None:
            self.usd += (tin * self.price[0] + tout * self.price[1]) / 1e6

    def _rows(self, job: ShadowJob, answers, scores, usage) -> tuple[dict, list[dict]]:
        from localroute.data.splits import hashed_split

        text = job.messages[-1]["content"]
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        qid = f"feedback:{digest}:{os.urandom(4).hex()}"  # the same prompt may be labelled again
        keep = self.cfg.store_text
        turns = job.messages if keep else [{"role": "user", "content": f"sha256:{digest}"}]
        split = hashed_split(text)  # the build's own seeded 0.6 / 0.2 / 0.2
        query = {
            "query_id": qid,
            "source": "feedback",
            "task": job.task,
            "turns": turns,
            "n_user_turns": sum(m["role"] == "user" for m in job.messages),
            "choices": job.choices,
            "reference": job.reference if keep else None,
            "grading": job.grading or ("judge" if job.reference is None else "normalised"),
            "split": split,
            "contaminated": False,
        }
        outcomes = []
        for side, answer in answers.items():
            u = usage.get(side) or {}
            outcomes.append(
                {
                    "query_id": qid,
                    "source": "feedback",
                    "turn": query["n_user_turns"],
                    "model": self.models[side],
                    "hardware": side,
                    "engine": "serve",
                    "tokens_in": u.get("tokens_in"),
                    "tokens_out": u.get("tokens_out"),
                    "answer": answer if keep else None,
                    "score": float(scores[side]),
                    "provenance": "feedback",
                    "run_id": self.run_id,
                }
            )
        return query, outcomes

    def flush(self) -> int:
        """Write the pending rows as one batch (queries, then outcomes), atomically; a write
        that fails (a full disk) drops this batch, counts it, and leaves earlier files intact."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from localroute.data.schema import OUTCOME_SCHEMA, QUERY_SCHEMA

        rows, self.rows = self.rows, []
        if not rows:
            return 0
        name = f"feedback-{self.run_id}-{time.time_ns()}"
        queries = pa.Table.from_pylist([q for q, _ in rows], schema=QUERY_SCHEMA)
        outcomes = pa.Table.from_pylist([o for _, os_ in rows for o in os_], schema=OUTCOME_SCHEMA)
        try:
            for kind, table in (("queries", queries), ("outcomes", outcomes)):
                folder = self.out / kind
                folder.mkdir(parents=True, exist_ok=True)
                tmp = folder / f".{name}.parquet.tmp"
                pq.write_table(table, tmp)
                os.replace(tmp, folder / f"{name}.parquet")
        except OSError as exc:
            self.counts["write_failed"] += len(rows)
            log.warning("feedback batch not written (%s): %d labels dropped", exc, len(rows))
            for kind in ("queries", "outcomes"):
                (self.out / kind / f".{name}.parquet.tmp").unlink(missing_ok=True)
            return 0
        self.counts["written"] += len(rows)
        return len(rows)

    def state(self) -> dict[str, Any]:
        """Counts, spend and drift, for /metrics and /healthz."""
        return {
            **self.counts,
            "queued": self.queue.qsize(),
            "shadow_tokens": self.tokens,
            "shadow_tokens_provenance": "measured (the providers' usage counts)",
            # the cloud's share priced at configs/prices.yaml's $/M tokens; None: not priced.
            # Joules are null: no meter reads the cloud, and the local side's shadow answers
            # are not metered in serving.
            "shadow_usd": self.usd if self.price is not None else None,
            "shadow_usd_provenance": self.price[2] if self.price is not None else "absent",
            "shadow_joules": None,
            "drift": rolling_drift(self.drift),
        }
