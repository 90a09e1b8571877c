"""The router ingress: an OpenAI-compatible FastAPI deployment that decides local or cloud.

Per request: authenticate (Bearer key), bound the body (413), validate (400), resolve the model
name (404), score the conversation with the trained router (p), fuse it with the live latency
model and the conversation's switch cost (p~, seed 001 eqs. 1-12), call the chosen model
deployment through its handle, and fall back to the other side when that fails. The decision is
reported in `x-localroute-*` response headers and in Prometheus metrics.
"""

import asyncio
import hashlib
import hmac
import logging
import math
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from serve.config import ServeConfig
from serve.decision import (
    DEFAULT_MODEL,
    UNTRAINED,
    Decision,
    LiveEstimates,
    SessionStore,
    continuation_key,
    decide_one,
    features,
    header_float,
    params_of,
    prefix_key,
    resolve_model,
    router_batch,
    session_key,
    words,
)
from serve.metrics import Metrics
from serve.protocol import (
    SSE_DONE,
    APIError,
    chunk,
    completion,
    error_body,
    new_id,
    parse_chat_request,
    sse,
)

log = logging.getLogger("ray.serve")

fastapi_app = FastAPI(title="localroute", docs_url=None, redoc_url=None, openapi_url=None)


@fastapi_app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return JSONResponse(
        error_body(str(exc.detail), "invalid_request_error", code), status_code=exc.status_code
    )


@fastapi_app.exception_handler(Exception)
async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled %s in %s", type(exc).__name__, request.url.path)
    return JSONResponse(error_body("internal error", "server_error"), status_code=500)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


OTHER = {"local": "cloud", "cloud": "local"}


@serve.deployment(name="RouterIngress")
@serve.ingress(fastapi_app)
class RouterIngress:
    def __init__(
        self,
        cfg: ServeConfig,
        local,
        cloud,
        key_hashes: list[str],
        router_source: dict[str, Any],
        latency_prior,
        model_names: dict[str, str],
    ) -> None:
        from localroute.routers import load_router, make_router

        self.cfg = cfg
        if router_source.get("artifact"):
            self.router = load_router(router_source["artifact"])
        else:
            self.router = make_router(router_source["name"], **router_source.get("params", {}))
        self.router_name = self.router.name
        self.routers = {self.router_name: self.router}
        self.theta = float(cfg.theta if cfg.theta is not None else self.router.threshold)
        self.prior = latency_prior
        self.prior_params = params_of(latency_prior)
        self.estimates = LiveEstimates(cfg.latency.ewma_weight, cfg.latency.min_transfer_bytes)
        self.sessions = SessionStore(cfg.sessions.max_sessions, cfg.sessions.ttl_s)
        self.metrics = Metrics()
        self.key_hashes = list(key_hashes)
        self.model_names = model_names
        self.handles = {"local": local, "cloud": cloud}
        self.streams = {"local": local.options(stream=True), "cloud": cloud.options(stream=True)}
        self.timeouts = {
            "local": cfg.local.timeout_s * (cfg.local.retries + 1) + 5.0,
            "cloud": (cfg.cloud.timeout_s + cfg.cloud.retry_backoff_s * 4) * (cfg.cloud.retries + 1)
            + 5.0,
        }
        self.retries = {"local": cfg.local.retries, "cloud": 0}  # cloud retries in its deployment
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ request checks

    def _auth(self, request: Request) -> None:
        if not self.key_hashes:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                code="invalid_api_key",
            )
        digest = hash_key(token.strip())
        if not any(hmac.compare_digest(digest, k) for k in self.key_hashes):
            raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")

    async def _body(self, request: Request) -> bytes:
        limit = self.cfg.limits.max_body_bytes
        too_big = APIError(
            413, f"request body exceeds {limit} bytes", code="request_too_large", param=None
        )
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise too_big
        body = bytearray()
        try:
            async for part in request.stream():
                body += part
                if len(body) > limit:
                    raise too_big
        except ClientDisconnect:
            raise APIError(400, "client disconnected while sending the request") from None
        return bytes(body)

    def _error(self, route: str, exc: APIError, extra: dict[str, str] | None = None) -> Response:
        self.metrics.request(route, exc.status)
        return JSONResponse(
            exc.body(), status_code=exc.status, headers={**(extra or {}), **exc.headers}
        )

    # ------------------------------------------------------------------ the decision

    def _router(self, name: str):
        if name not in self.routers:
            from localroute.routers import make_router

            assert name in UNTRAINED
            self.routers[name] = make_router(name)
        return self.routers[name]

    async def _score(self, router, batch) -> float:
        if router.trainable:
            scores = await asyncio.to_thread(router.score, batch)
        else:
            scores = router.score(batch)
        return float(scores[0])

    def _latency_model(self):
        if self.cfg.latency.live:
            return self.estimates.params(self.prior)
        return self.prior_params

    def _maybe_probe(self) -> None:
        if not self.cfg.latency.live:
            return
        now = time.monotonic()
        if now - self.estimates.last_probe < self.cfg.latency.probe_interval_s:
            return
        self.estimates.last_probe = now
        task = asyncio.get_running_loop().create_task(self._probe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _probe(self) -> None:
        try:
            rtt = await asyncio.wait_for(self.handles["cloud"].probe.remote(), 10.0)
        except Exception:
            return
        if rtt is not None:
            self.estimates.observe_rtt(rtt)

    def _learn(self, side: str, stats: dict[str, Any]) -> None:
        if side == "local":
            self.estimates.observe_local(
                stats.get("tokens_in"),
                stats.get("ttft_s"),
                stats.get("tokens_out"),
                stats.get("decode_s"),
            )
        elif stats.get("bytes") and stats.get("transfer_s"):
            self.estimates.observe_transfer(stats["bytes"], stats["transfer_s"])

    def _headers(
        self, rid: str, d: Decision, served: str, router: str, failures: list[tuple[str, dict]]
    ) -> dict[str, str]:
        reason = d.reason
        h = {
            "x-request-id": rid,
            "x-localroute-decision": served,
            "x-localroute-chosen": d.side,
            "x-localroute-p": header_float(d.p),
            "x-localroute-p-fused": header_float(d.fused),
            "x-localroute-theta": header_float(d.theta),
            "x-localroute-alpha": header_float(d.alpha),
            "x-localroute-t-local": header_float(d.t_local),
            "x-localroute-t-cloud": header_float(d.t_cloud),
            "x-localroute-router": router,
            "x-localroute-switch": "true" if (d.prev_side and d.prev_side != served) else "false",
        }
        if failures:
            side, err = failures[0]
            kind = err.get("kind", "error")
            h["x-localroute-fallback"] = f"{side}->{served}; {kind}"
            reason = f"fallback to {served}: {side} failed ({kind}); chosen by fusion: {reason}"
        h["x-localroute-reason"] = reason.encode("ascii", "replace").decode()
        return h

    # ------------------------------------------------------------------ model calls

    async def _call(self, side: str, payload: dict[str, Any]) -> dict[str, Any]:
        from ray.serve.exceptions import BackPressureError

        out: dict[str, Any] = {"error": {"kind": "error", "message": "not called"}}
        for _ in range(self.retries[side] + 1):
            response = self.handles[side].generate.remote(payload)
            try:
                out = await asyncio.wait_for(response, self.timeouts[side])
            except TimeoutError:
                response.cancel()
                out = {"error": {"kind": "timeout", "message": f"{side} deployment timed out"}}
            except BackPressureError:
                return {"error": {"kind": "overloaded", "message": f"{side} deployment is full"}}
            except Exception as exc:
                out = {"error": {"kind": "deployment", "message": type(exc).__name__}}
            if "error" not in out:
                return out
        return out

    async def _open_stream(self, side: str, payload: dict[str, Any]):
        """Start a stream and wait for its first item, so a failure can still fall back."""
        from ray.serve.exceptions import BackPressureError

        for _ in range(self.retries[side] + 1):
            gen = self.streams[side].stream.remote(payload)
            try:
                first = await asyncio.wait_for(gen.__anext__(), self.timeouts[side])
            except StopAsyncIteration:
                first = {"error": {"kind": "empty", "message": f"{side} stream ended at once"}}
            except TimeoutError:
                gen.cancel()
                first = {"error": {"kind": "timeout", "message": f"{side} deployment timed out"}}
            except BackPressureError:
                return None, {"error": {"kind": "overloaded", "message": f"{side} is full"}}
            except Exception as exc:
                first = {"error": {"kind": "deployment", "message": type(exc).__name__}}
            if "error" not in first:
                return gen, first
        return None, first

    def _all_failed(self, failures: list[tuple[str, dict]]) -> APIError:
        if failures and all(e.get("kind") == "overloaded" for _, e in failures):
            bp = self.cfg.backpressure
            return APIError(
                bp.status_code,
                "The server is overloaded; retry later.",
                type="server_error",
                code="overloaded",
                headers={"Retry-After": str(max(1, math.ceil(bp.retry_after_s)))},
            )
        sides = ", ".join(f"{s}: {e.get('kind')}" for s, e in failures)
        return APIError(
            502, f"No model could answer ({sides}).", type="server_error", code="upstream_error"
        )

    # ------------------------------------------------------------------ routes

    @fastapi_app.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "router": self.router_name,
            "theta": self.theta,
            "alpha": self.cfg.alpha,
            "models": self.model_names,
            "estimates": self.estimates.snapshot(),
            "sessions": len(self.sessions),
        }

    @fastapi_app.get("/metrics")
    async def metrics(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @fastapi_app.get("/v1/models")
    async def models(self, request: Request) -> Response:
        try:
            self._auth(request)
        except APIError as exc:
            return self._error("models", exc)
        self.metrics.request("models", 200)
        now = int(time.time())
        ids = [DEFAULT_MODEL, f"router-{self.router_name}-{self.theta:g}"]
        ids += [f"router-{n}-{self.theta:g}" for n in UNTRAINED if n != self.router_name]
        data = [{"id": i, "object": "model", "created": now, "owned_by": "localroute"} for i in ids]
        return JSONResponse({"object": "list", "data": data})

    @fastapi_app.post("/v1/chat/completions")
    async def chat(self, request: Request) -> Response:
        t0 = time.perf_counter()
        rid = new_id()
        try:
            self._auth(request)
            req = parse_chat_request(
                await self._body(request),
                max_messages=self.cfg.limits.max_messages,
                max_tokens_limit=self.cfg.limits.max_tokens,
            )
            route = resolve_model(req.model, self.router_name)
            router = self._router(route.router)
            feats = features(req.messages)
            task = request.headers.get("x-localroute-task") or self.cfg.router.default_task
            p = await self._score(router, router_batch(feats, task))
            sid = request.headers.get(self.cfg.sessions.header)
            key = session_key(sid) if sid else prefix_key(req.messages)
            prev = self.sessions.get(key) if (sid or len(req.messages) > 1) else None
            decision = decide_one(
                p,
                self.theta if route.theta is None else route.theta,
                self.cfg.alpha if route.alpha is None else route.alpha,
                feats.prompt_words,
                feats.context_words,
                prev.side if prev else None,
                self._latency_model(),
            )
        except APIError as exc:
            return self._error("chat", exc, {"x-request-id": rid})
        self._maybe_probe()
        self.metrics.observe_hop(time.perf_counter() - t0)
        ctx = {
            "rid": rid,
            "req": req,
            "decision": decision,
            "router": route.router,
            "sid": sid,
            "feats": feats,
            "t0": t0,
        }
        if req.stream:
            return await self._chat_stream(ctx)
        return await self._chat_unary(ctx)

    def _remember(self, ctx: dict[str, Any], served: str, reply: str) -> None:
        req, feats = ctx["req"], ctx["feats"]
        # Under the prefix hash always (a client may drop the header), and the session id too.
        context = feats.context_words + feats.prompt_words + words(reply)
        self.sessions.put(continuation_key(req.messages, reply), served, context)
        if ctx["sid"]:
            self.sessions.put(session_key(ctx["sid"]), served, context)

    async def _chat_unary(self, ctx: dict[str, Any]) -> Response:
        d: Decision = ctx["decision"]
        order = [d.side, OTHER[d.side]] if self.cfg.fallback else [d.side]
        failures: list[tuple[str, dict]] = []
        payload = ctx["req"].payload()
        for side in order:
            out = await self._call(side, payload)
            if "error" not in out:
                break
            failures.append((side, out["error"]))
        else:
            return self._error("chat", self._all_failed(failures), {"x-request-id": ctx["rid"]})
        served = side
        if failures:
            self.metrics.fallback(failures[0][0], served, failures[0][1].get("kind", "error"))
        self._learn(served, out)
        self._remember(ctx, served, out["text"])
        self.metrics.decision(d.side, served, ctx["router"])
        self.metrics.request("chat", 200)
        self.metrics.observe_latency(served, False, time.perf_counter() - ctx["t0"])
        body = completion(
            ctx["rid"],
            out.get("model") or self.model_names[served],
            out["text"],
            out.get("tokens_in"),
            out.get("tokens_out"),
            out.get("finish_reason") or "stop",
        )
        headers = self._headers(ctx["rid"], d, served, ctx["router"], failures)
        return JSONResponse(body, headers=headers)

    async def _chat_stream(self, ctx: dict[str, Any]) -> Response:
        d: Decision = ctx["decision"]
        order = [d.side, OTHER[d.side]] if self.cfg.fallback else [d.side]
        failures: list[tuple[str, dict]] = []
        payload = ctx["req"].payload()
        gen = first = None
        for side in order:
            gen, first = await self._open_stream(side, payload)
            if gen is not None:
                break
            failures.append((side, first["error"]))
        else:
            return self._error("chat", self._all_failed(failures), {"x-request-id": ctx["rid"]})
        served = side
        if failures:
            self.metrics.fallback(failures[0][0], served, failures[0][1].get("kind", "error"))
        self.metrics.decision(d.side, served, ctx["router"])
        self.metrics.request("chat", 200)
        self.metrics.observe_ttft(served, time.perf_counter() - ctx["t0"])
        headers = self._headers(ctx["rid"], d, served, ctx["router"], failures)
        return StreamingResponse(
            self._relay(ctx, served, gen, first),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache"},
        )

    async def _relay(self, ctx: dict[str, Any], served: str, gen, first: dict[str, Any]):
        rid, req = ctx["rid"], ctx["req"]
        model = self.model_names[served]
        created = int(time.time())
        parts: list[str] = []
        stats: dict[str, Any] | None = None
        yield sse(chunk(rid, model, {"role": "assistant", "content": ""}, created=created))
        item: dict[str, Any] | None = first
        try:
            while item is not None:
                if "delta" in item:
                    parts.append(item["delta"])
                    yield sse(chunk(rid, model, {"content": item["delta"]}, created=created))
                elif item.get("done"):
                    stats = item
                    break
                elif "error" in item:
                    # Mid-stream failure: an OpenAI-style error event, which clients raise on.
                    msg = f"{served} model failed mid-stream ({item['error'].get('kind')})"
                    yield sse(error_body(msg, "server_error", "upstream_error"))
                    yield SSE_DONE
                    return
                try:
                    item = await asyncio.wait_for(gen.__anext__(), self.timeouts[served])
                except StopAsyncIteration:
                    item = None
        except TimeoutError:
            gen.cancel()
            yield sse(error_body(f"{served} model timed out mid-stream", "server_error", "timeout"))
            yield SSE_DONE
            return
        finish = (stats or {}).get("finish_reason") or "stop"
        yield sse(chunk(rid, model, {}, finish, created=created))
        if req.include_usage and stats and stats.get("tokens_in") is not None:
            usage = {
                "prompt_tokens": stats["tokens_in"],
                "completion_tokens": stats.get("tokens_out") or 0,
                "total_tokens": stats["tokens_in"] + (stats.get("tokens_out") or 0),
            }
            event = chunk(rid, model, {}, created=created)
            event["choices"] = []
            event["usage"] = usage
            yield sse(event)
        yield SSE_DONE
        if stats:
            self._learn(served, stats)
        reply = "".join(parts)
        self._remember(ctx, served, reply)
        self.metrics.observe_latency(served, True, time.perf_counter() - ctx["t0"])
