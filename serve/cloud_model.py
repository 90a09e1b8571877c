"""The cloud model deployment: forwards chat requests to an OpenAI-compatible API.

Same calls as the local deployment (`generate`, streaming `stream`), plus `probe()`, a timed
`GET /models` that measures the round trip to the API (the link's delta), and `__call__`, which
serves the OpenAI route directly so a benchmark can call this deployment without the router.

Faults are bounded: a timeout, a refused connection, a 5xx or a 429 is retried `retries` times
with a short backoff (a stream only until its first chunk); after that the error comes back as
`{"error": {"kind", "message"}}` and the ingress falls back to the local side. The API key is
read from the environment variable the config names (in the replica), else from the value the
driver resolved at build time; it is only ever sent in the Authorization header.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from serve.config import CloudModelConfig

log = logging.getLogger("ray.serve")


class Secret:
    """A string that never shows itself in a repr, a log line or an error message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __reduce__(self):
        return (Secret, (self._value,))


class _Fault(Exception):
    def __init__(self, kind: str, message: str, retry: bool) -> None:
        super().__init__(message)
        self.kind, self.message, self.retry = kind, message, retry


def _classify(exc: BaseException) -> _Fault:
    import httpx2

    if isinstance(exc, _Fault):
        return exc
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return _Fault("timeout", "cloud API timed out", True)
    if isinstance(exc, httpx2.TransportError):
        return _Fault("unreachable", f"cloud API unreachable ({type(exc).__name__})", True)
    return _Fault("error", f"cloud call failed ({type(exc).__name__})", False)


def _status_fault(status: int) -> _Fault:
    retry = status >= 500 or status == 429
    return _Fault(f"http_{status}", f"cloud API answered HTTP {status}", retry)


@serve.deployment(name="CloudModel")
class CloudModel:
    def __init__(self, cfg: CloudModelConfig, api_key: Secret | None = None) -> None:
        import httpx2

        self.cfg = cfg
        key = os.environ.get(cfg.api_key_env) or (api_key.reveal() if api_key else "")
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx2.AsyncClient(
            base_url=cfg.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx2.Timeout(cfg.timeout_s, connect=cfg.connect_timeout_s),
            limits=httpx2.Limits(
                max_connections=cfg.max_connections,
                max_keepalive_connections=cfg.max_connections,
            ),
            trust_env=False,
        )

    def _body(self, payload: dict[str, Any], stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.cfg.model,
            "messages": payload["messages"],
            "stream": stream,
        }
        if payload.get("max_tokens"):
            body["max_tokens"] = min(payload["max_tokens"], self.cfg.max_tokens)
        if payload.get("temperature") is not None:
            body["temperature"] = payload["temperature"]
        if payload.get("seed") is not None:
            body["seed"] = payload["seed"]
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    async def _retrying(self, once):
        last: _Fault | None = None
        for attempt in range(self.cfg.retries + 1):
            try:
                return await once(), attempt
            except Exception as exc:
                last = _classify(exc)
                if not last.retry or attempt == self.cfg.retries:
                    break
                await asyncio.sleep(self.cfg.retry_backoff_s * (2**attempt))
        assert last is not None
        raise _Fault(last.kind, f"{last.message} (after {attempt + 1} tries)", False)

    async def generate(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = self._body(payload, stream=False)

        async def once():
            t0 = time.perf_counter()
            async with self.client.stream("POST", "/chat/completions", json=body) as resp:
                t_head = time.perf_counter()
                raw = await resp.aread()
                t_end = time.perf_counter()
            if resp.status_code != 200:
                raise _status_fault(resp.status_code)
            try:
                data = json.loads(raw)
                text = data["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                raise _Fault("bad_response", "cloud API sent a malformed response", True) from None
            usage = data.get("usage") or {}
            return {
                "text": text,
                "model": data.get("model") or self.cfg.model,
                "tokens_in": usage.get("prompt_tokens"),
                "tokens_out": usage.get("completion_tokens"),
                "finish_reason": data["choices"][0].get("finish_reason") or "stop",
                "ttfb_s": t_head - t0,
                "bytes": len(raw),
                "transfer_s": t_end - t_head,
            }

        try:
            result, attempt = await self._retrying(once)
        except _Fault as f:
            return {"error": {"kind": f.kind, "message": f.message}}
        result["retries"] = attempt
        return result

    async def stream(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Deltas from the API's SSE stream; retried only while nothing has been yielded."""
        body = self._body(payload, stream=True)
        for attempt in range(self.cfg.retries + 1):
            started = False
            try:
                t0 = time.perf_counter()
                async with self.client.stream("POST", "/chat/completions", json=body) as resp:
                    if resp.status_code != 200:
                        await resp.aread()
                        raise _status_fault(resp.status_code)
                    t_first = None
                    n_bytes = 0
                    usage: dict[str, Any] = {}
                    finish = "stop"
                    model = self.cfg.model
                    async for line in resp.aiter_lines():
                        n_bytes += len(line) + 1
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        try:
                            event = json.loads(data)
                        except ValueError:
                            raise _Fault("bad_response", "malformed SSE event", False) from None
                        if "error" in event:
                            raise _Fault("upstream_error", "cloud API sent an error event", False)
                        model = event.get("model") or model
                        usage = event.get("usage") or usage
                        for choice in event.get("choices") or []:
                            finish = choice.get("finish_reason") or finish
                            delta = (choice.get("delta") or {}).get("content")
                            if delta:
                                if t_first is None:
                                    t_first = time.perf_counter()
                                started = True
                                yield {"delta": delta}
                    t_end = time.perf_counter()
                yield {
                    "done": True,
                    "model": model,
                    "tokens_in": usage.get("prompt_tokens"),
                    "tokens_out": usage.get("completion_tokens"),
                    "finish_reason": finish,
                    "ttft_s": (t_first - t0) if t_first else None,
                    "bytes": n_bytes,
                    "transfer_s": (t_end - t_first) if t_first else None,
                    "retries": attempt,
                }
                return
            except Exception as exc:
                fault = _classify(exc)
                if started or not fault.retry or attempt == self.cfg.retries:
                    tries = f" (after {attempt + 1} tries)" if not started else " (mid-stream)"
                    yield {"error": {"kind": fault.kind, "message": fault.message + tries}}
                    return
                await asyncio.sleep(self.cfg.retry_backoff_s * (2**attempt))

    async def probe(self) -> float | None:
        """Seconds for a `GET /models` round trip (any HTTP answer counts); None if unreachable."""
        t0 = time.perf_counter()
        try:
            resp = await self.client.get("/models", timeout=self.cfg.connect_timeout_s)
            await resp.aread()
        except Exception:
            return None
        return time.perf_counter() - t0

    async def __call__(self, request) -> Any:
        """The OpenAI route served by this deployment alone (no router): for benchmarks."""
        from starlette.responses import JSONResponse

        from serve.protocol import completion, error_body, new_id

        try:
            body = json.loads(await request.body())
            payload = {k: body.get(k) for k in ("messages", "max_tokens", "temperature", "seed")}
        except (ValueError, AttributeError):
            return JSONResponse(error_body("invalid JSON", "invalid_request_error"), 400)
        out = await self.generate(payload)
        if "error" in out:
            return JSONResponse(error_body(out["error"]["message"], "upstream_error"), 502)
        return JSONResponse(
            completion(
                new_id(),
                out["model"],
                out["text"],
                out["tokens_in"],
                out["tokens_out"],
                out["finish_reason"],
            )
        )
