"""The router ingress: an OpenAI-compatible FastAPI deployment that decides local or cloud.

Per request: authenticate, bound and validate (serve/guard.py, serve/protocol.py), resolve the
model name, score with the router (p), and let the route controller decide
(localroute.core.controller: the operating point, the deployed models' latency model with live
estimates, the switch cost, the local queue's wait, the context window and a target share's
tracker; the report's as-deployed replay runs the same controller). The chosen side is called
(serve/relay.py), falling back to the other; the decision is in `x-localroute-*` headers
(serve/headers.py), metrics and sessions shared by every ingress replica (serve/state.py).
"""

import asyncio
import contextlib
import logging
import math
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from starlette.background import BackgroundTask

from localroute.core.controller import RequestInputs
from localroute.core.live import LiveEstimates, LocalLoad
from serve.cloud_client import CloudClient, Secret
from serve.config import ServeConfig
from serve.decided import DecidedRequest
from serve.decision import (
    DEFAULT_MODEL,
    UNTRAINED,
    continuation_key,
    estimated_tokens,
    features,
    model_name_ids,
    prefix_key,
    resolve_model,
    router_batch,
    session_key,
    words,
)
from serve.guard import check_key, hash_key, read_body
from serve.headers import ascii_header, controller_headers, decision_headers
from serve.http import fastapi_app, replica_id, request_id
from serve.protocol import APIError, completion, model_list, parse_chat_request
from serve.relay import Dispatcher, relay
from serve.state import SharedState

__all__ = ["RouterIngress", "hash_key"]

log = logging.getLogger("ray.serve")


@serve.deployment(name="RouterIngress")
@serve.ingress(fastapi_app)
class RouterIngress:
    def __init__(
        self,
        cfg: ServeConfig,
        local,
        cloud_key: Secret | None,
        key_hashes: list[str],
        router_source: dict[str, Any],
        latency_prior,
        model_names: dict[str, str],
        state=None,
        local_window: int | None = None,
    ) -> None:
        import os

        from serve.served_router import ServedRouter

        self.cfg = cfg
        lat = cfg.latency
        estimates = None
        if lat.live:
            estimates = LiveEstimates(
                lat.ewma_weight, lat.min_transfer_bytes, lat.min_samples, lat.decay_half_life_s
            )
        slots = max(1, cfg.local.deployment.min_replicas) * cfg.local.concurrency
        self.load = LocalLoad(slots, lat.ewma_weight, lat.min_samples)
        # The router, its operating point (one precedence: config > artifact > the preset
        # workload's alpha, as train and evaluate resolve it) and controller; swapped without a
        # restart when serve.router.watch_s watches the artifact (serve/served_router.py).
        self.served = ServedRouter(cfg, router_source, latency_prior, estimates, self.load)
        self.router_source = router_source.get("artifact")
        self.estimates = estimates
        self.replica = replica_id()
        self.shared = SharedState(state, cfg.sessions.max_sessions, cfg.sessions.ttl_s)
        self.metrics = self.shared.metrics
        self.key_hashes = list(key_hashes)
        self.model_names = model_names
        self.local = local
        key = os.environ.get(cfg.cloud.api_key_env) or (cloud_key.reveal() if cloud_key else "")
        self.cloud = CloudClient(cfg.cloud, key)
        self.dispatch = Dispatcher(cfg, local, self.cloud, self.load)
        self.feedback = None  # shadow labels of live traffic (serve.feedback), off by default
        if cfg.feedback.enabled:
            from serve.feedback import ShadowLabeller

            self.feedback = ShadowLabeller(
                cfg.feedback, self.dispatch, self.cloud, model_names, run_id=self.replica
            )
        self.local_window = local_window
        self._tasks: set[asyncio.Task] = set()
        self._window_task = None
        with contextlib.suppress(RuntimeError):  # Serve runs __init__ on the replica's loop
            self._window_task = asyncio.get_running_loop().create_task(self._fetch_window())
            self.dispatch.health.start_polling()
            if self.router_source and cfg.router.watch_s > 0:
                self._background(self.served.watch())

    # ------------------------------------------------------------------ the decision

    async def _score(self, router, batch) -> float:
        if router.trainable:
            scores = await asyncio.to_thread(router.score, batch)
        else:
            scores = router.score(batch)
        return float(scores[0])

    def _background(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _maybe_probe(self) -> None:
        if self.estimates is None:
            return
        now = time.monotonic()
        if now - self.estimates.last_probe < self.cfg.latency.probe_interval_s:
            return
        self.estimates.last_probe = now
        self._background(self._probe())

    async def _probe(self) -> None:
        rtt = await self.cloud.probe()
        if rtt is not None:
            self.estimates.observe_rtt(rtt)

    def _learn(self, side: str, stats: dict[str, Any]) -> None:
        if self.estimates is not None:
            self.estimates.observe_answer(side, stats)

    async def _local_info(self, timeout_s: float) -> dict[str, Any]:
        """The local deployment's `info()`; its context window replaces the build-time one."""
        info = await asyncio.wait_for(self.local.info.remote(), timeout_s)
        self.dispatch.health.answered()
        if info.get("context_window"):
            self.local_window = int(info["context_window"])
        return info

    async def _fetch_window(self, tries: int = 120) -> None:
        """Ask the local deployment for its context window until it answers (it may still be
        loading its model)."""
        for _ in range(tries):
            try:
                await self._local_info(5.0)
                return
            except Exception:
                await asyncio.sleep(1.0)

    async def _decide(self, request: Request, req, route, slot) -> tuple:
        """(Routed, features, theta headers): the router's p, the conversation's last side and
        whether it fits the local window, decided by the slot's controller (the report's replay
        runs the same controller); the slot was taken when the request began."""
        router, ctl = self.served.router(slot, route.router), slot.controller
        feats = features(req.messages)
        task = request.headers.get("x-localroute-task") or self.cfg.router.default_task
        p = await self._score(router, router_batch(feats, task))
        sid = request.headers.get(self.cfg.sessions.header)
        key = session_key(sid) if sid else prefix_key(req.messages)
        prev = None
        if sid or len(req.messages) > 1:
            prev = await self.shared.session(key, shared_first=bool(sid))
        window_task = self._window_task
        if self.local_window is None and window_task is not None and not window_task.done():
            await asyncio.wait({window_task}, timeout=0.5)  # the first requests: a short wait
        need = estimated_tokens(req.messages, req.max_tokens or self.cfg.local.max_new_tokens)
        steer = route.theta is None and route.router == slot.name
        inputs = RequestInputs(
            p,
            feats.prompt_words,
            feats.context_words,
            prev[0] if prev else None,
            req.max_tokens,
            need,
            self.local_window,
        )
        routed = ctl.decide(inputs, theta=route.theta, alpha=route.alpha, steer=steer)
        tracker = ctl.tracker
        if steer and tracker is not None:
            theta, _ = ctl.theta()
            share = tracker.cloud_share()
            self.metrics.tracker_state(
                self.replica,
                theta,
                tracker.fill,
                math.nan if share is None else share,
                tracker.target,
            )
        return routed, feats, controller_headers(routed, tracker)

    def __del__(self) -> None:
        """At replica shutdown (Serve calls it): write the shadow labels short of a batch."""
        if getattr(self, "feedback", None) is not None:
            self.feedback.flush()

    # ------------------------------------------------------------------ routes

    @fastapi_app.get("/healthz")
    async def healthz(self, request: Request) -> Response:
        """Liveness: this replica answers, and nothing more without a key. With a key (checked
        as for /v1/models; a wrong one is 401) the replica's details. Readiness is /readyz."""
        if "authorization" not in request.headers:
            return JSONResponse({"status": "ok"})
        try:
            check_key(request, self.key_hashes)
        except APIError as exc:
            return self._error("healthz", exc)
        details = {
            "status": "ok",
            "replica": serve.get_replica_context().replica_id.unique_id,
            **self.served.state(),
            **self.served.current.controller.state(),
            "models": self.model_names,
            "estimates": self.estimates.raw() if self.estimates is not None else None,
            "local_queue": {"inflight": self.load.inflight, "slots": self.load.slots},
            "local_context_window": self.local_window,
            "sessions": await self.shared.n_sessions(),
            # shadow labels: counts, spend and the served router's rolling AUC / Brier (drift)
            "feedback": self.feedback.state() if self.feedback is not None else None,
        }
        return JSONResponse(details)

    @fastapi_app.get("/readyz")
    async def readyz(self) -> Response:
        """200 when the local deployment and the cloud API both answer now, else 503."""
        checks: dict[str, str] = {}
        try:
            await self._local_info(2.0)
            checks["local"] = "ok"
        except Exception as exc:
            checks["local"] = f"not ready ({type(exc).__name__})"
        rtt = await self.cloud.probe()
        checks["cloud"] = "ok" if rtt is not None else "unreachable"
        ready = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    @fastapi_app.get("/metrics")
    async def metrics(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        if self.feedback is not None:
            self.metrics.feedback_state(self.replica, self.feedback.state())
        text, scope = await self.shared.render()
        headers = {"x-localroute-metrics-scope": scope}
        return Response(text, media_type=CONTENT_TYPE_LATEST, headers=headers)

    @fastapi_app.get("/v1/models")
    async def models(self, request: Request) -> Response:
        self.shared.ensure_flusher()
        try:
            check_key(request, self.key_hashes)
        except APIError as exc:
            return self._error("models", exc)
        self.metrics.request("models", 200)
        slot = self.served.current
        ids = [DEFAULT_MODEL, *model_name_ids(slot.router, UNTRAINED)]
        body = model_list(ids, slot.router, router_source=self.router_source)
        for m in body["data"]:
            m["pairing"], m["pairing_line"] = slot.pairing, slot.pairing_line
        return JSONResponse(body)

    def _error(self, route: str, exc: APIError) -> Response:
        self.metrics.request(route, exc.status)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @fastapi_app.post("/v1/chat/completions")
    async def chat(self, request: Request) -> Response:
        t0 = time.perf_counter()
        self.shared.ensure_flusher()
        rid = "chatcmpl-" + request_id(request)
        try:
            check_key(request, self.key_hashes)
            req = parse_chat_request(
                await read_body(request, self.cfg.limits.max_body_bytes),
                max_messages=self.cfg.limits.max_messages,
                max_tokens_limit=self.cfg.limits.max_tokens,
            )
            slot = self.served.current  # in-flight requests keep it across a swap
            route = resolve_model(req.model, slot.name)
            routed, feats, theta_info = await self._decide(request, req, route, slot)
        except APIError as exc:
            return self._error("chat", exc)
        self._maybe_probe()
        self.metrics.observe_hop(time.perf_counter() - t0)
        ctx = DecidedRequest(
            rid=rid,
            req=req,
            router=route.router,
            slot=slot,
            routed=routed,
            feats=feats,
            theta_headers=theta_info,
            t0=t0,
            headers=request.headers,
            session_id=request.headers.get(self.cfg.sessions.header),
        )
        # A conversation too long for the local window is never sent there, not even to fall back.
        order = self.dispatch.order(routed.decision.side, fallback=routed.decision.fits_local)
        if req.stream:
            return await self._chat_stream(ctx, order)
        return await self._chat_unary(ctx, order)

    def _shadow_job(self, ctx: DecidedRequest, served: str, reply: str, stats: dict | None):
        """The shadow-labelling job of a request the served router decided (None: feedback
        off, or another router)."""
        if self.feedback is None or not ctx.by_served_router:
            return None
        from serve.feedback import job_for

        return job_for(ctx.req, ctx.headers, served, reply, ctx.decision.p, stats)

    def _remember(self, ctx: DecidedRequest, served: str, reply: str) -> None:
        req, feats = ctx.req, ctx.feats
        # Under the prefix hash always (a client may drop the header), and the session id too.
        context = feats.context_words + feats.prompt_words + words(reply)
        self.shared.put_session(continuation_key(req.messages, reply), served, context)
        if ctx.session_id:
            self.shared.put_session(session_key(ctx.session_id), served, context)

    def _served(self, ctx: DecidedRequest, served: str, failures: list) -> dict[str, str]:
        if failures:
            self.metrics.fallback(failures[0][0], served, failures[0][1].get("kind", "error"))
        self.metrics.decision(ctx.decision.side, served, ctx.router)
        self.metrics.request("chat", 200)
        headers = decision_headers(ctx.decision, served, ctx.router, failures, ctx.theta_headers)
        slot = ctx.slot
        if ctx.by_served_router:
            headers["x-localroute-router-fingerprint"] = str(slot.router.fingerprint)
            if slot.pairing_line:
                headers["x-localroute-pairing"] = ascii_header(slot.pairing_line)
        return headers

    async def _chat_unary(self, ctx: DecidedRequest, order: list[str]) -> Response:
        served, out, failures = await self.dispatch.unary(order, ctx.req.payload())
        if served is None:
            return self._error("chat", self.dispatch.all_failed(failures))
        headers = self._served(ctx, served, failures)
        self._learn(served, out)
        self._remember(ctx, served, out["text"])
        self.metrics.observe_latency(served, False, time.perf_counter() - ctx.t0)
        body = completion(
            ctx.rid,
            self.model_names[served],  # the configured name, as in stream chunks
            out["text"],
            out.get("tokens_in"),
            out.get("tokens_out"),
            out.get("finish_reason") or "stop",
        )
        job = self._shadow_job(ctx, served, out["text"], out)
        # offered after the answer is sent (Starlette runs the task after the response)
        task = BackgroundTask(self.feedback.offer_after, job) if job is not None else None
        return JSONResponse(body, headers=headers, background=task)

    async def _chat_stream(self, ctx: DecidedRequest, order: list[str]) -> Response:
        served, stream, first, failures = await self.dispatch.open(order, ctx.req.payload())
        if served is None:
            return self._error("chat", self.dispatch.all_failed(failures))
        headers = self._served(ctx, served, failures)
        t_open = time.perf_counter()
        self.metrics.observe_ttft(served, t_open - ctx.t0)

        def on_end(reply: str, stats: dict[str, Any] | None, ok: bool) -> None:
            if served == "local":
                self.load.finished(time.perf_counter() - t_open if ok else None)
            if not ok:
                return
            if stats:
                self._learn(served, stats)
            self._remember(ctx, served, reply)
            job = self._shadow_job(ctx, served, reply, stats)
            if job is not None:
                self.feedback.offer(job)  # the last chunk is out: off the request's path
            self.metrics.observe_latency(served, True, time.perf_counter() - ctx.t0)

        events = relay(
            ctx.rid,
            self.model_names[served],
            served,
            stream,
            first,
            ctx.req.include_usage,
            on_end,
        )
        return StreamingResponse(
            events, media_type="text/event-stream", headers={**headers, "Cache-Control": "no-cache"}
        )
