"""The cloud side: a pooled HTTP client for an OpenAI-compatible API, run in the ingress process.

Calling the API from the ingress (not through a Serve deployment handle) saves a Ray hop per
request; the connection pool (keep-alive, `max_connections`) is shared by every request of the
replica. `CloudModel` (serve/testing/cloud_model.py) wraps the same client as a deployment of
its own, for the router-hop benchmark.

One deadline per request: `timeout_s` bounds the whole call, connect + first byte + body, retries
and their backoff included, so a hung or trickling API costs at most `timeout_s` before the
ingress falls back. A timeout, a refused connection, a 5xx or a 429 is retried while time is
left (a stream only until its first delta); after that the error comes back as
`{"error": {"kind", "message"}}`. Streams yield `{"delta": text}` items and one
`{"done": True, ...stats}` item, as the local deployment does. The API key is only ever sent in
the Authorization header.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from serve.config import CloudModelConfig


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


def _error(f: _Fault, suffix: str = "") -> dict[str, Any]:
    return {"error": {"kind": f.kind, "message": f.message + suffix}}


class _Deadline:
    """Seconds left until one absolute deadline; `wait(aw)` bounds one await by what is left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    async def wait(self, aw):
        left = self.left()
        if left <= 0:
            if hasattr(aw, "close"):
                aw.close()  # a coroutine never awaited
            raise TimeoutError
        return await asyncio.wait_for(aw, left)


class CloudClient:
    def __init__(self, cfg: CloudModelConfig, api_key: Secret | str | None = None) -> None:
        import httpx2

        self.cfg = cfg
        key = api_key.reveal() if isinstance(api_key, Secret) else (api_key or "")
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        # httpx's own timeouts bound each phase; the request's deadline bounds the sum.
        self.client = httpx2.AsyncClient(
            base_url=cfg.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx2.Timeout(
                cfg.timeout_s, connect=min(cfg.connect_timeout_s, cfg.timeout_s)
            ),
            limits=httpx2.Limits(
                max_connections=cfg.max_connections,
                max_keepalive_connections=cfg.max_connections,
            ),
            trust_env=False,
        )

    def body(self, payload: dict[str, Any], stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": payload.get("model") or self.cfg.model,  # a judge may name its own model
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

    async def _backoff(self, attempt: int, deadline: _Deadline) -> bool:
        """Sleep before retry `attempt + 1`; False when no retry fits in the deadline."""
        pause = self.cfg.retry_backoff_s * (2**attempt)
        if attempt >= self.cfg.retries or deadline.left() <= pause + 0.001:
            return False
        await asyncio.sleep(pause)
        return True

    async def _open(self, body: dict[str, Any], deadline: _Deadline, attempt: int):
        """Send and wait for the response head. Each try gets its share of the time left for
        the first byte (a hung try leaves room for the retry); the body gets all that is left."""
        request = self.client.build_request("POST", "/chat/completions", json=body)
        share = deadline.left() / (self.cfg.retries - attempt + 1)
        send = self.client.send(request, stream=True)
        if share <= 0:
            send.close()
            raise TimeoutError
        return await asyncio.wait_for(send, share)

    async def generate(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = self.body(payload, stream=False)
        deadline = _Deadline(self.cfg.timeout_s)
        attempt = 0
        while True:
            resp = None
            try:
                t0 = time.perf_counter()
                resp = await self._open(body, deadline, attempt)
                t_head = time.perf_counter()
                raw = await deadline.wait(resp.aread())
                t_end = time.perf_counter()
                if resp.status_code != 200:
                    raise _status_fault(resp.status_code)
                try:
                    data = json.loads(raw)
                    choice = data["choices"][0]
                    text = choice["message"]["content"] or ""
                except (ValueError, KeyError, IndexError, TypeError):
                    raise _Fault(
                        "bad_response", "cloud API sent a malformed response", True
                    ) from None
                usage = data.get("usage") or {}
                return {
                    "text": text,
                    "model": data.get("model") or self.cfg.model,
                    "tokens_in": usage.get("prompt_tokens"),
                    "tokens_out": usage.get("completion_tokens"),
                    "finish_reason": choice.get("finish_reason") or "stop",
                    "ttfb_s": t_head - t0,
                    "bytes": len(raw),
                    "transfer_s": t_end - t_head,
                    "retries": attempt,
                }
            except Exception as exc:
                fault = _classify(exc)
                if not fault.retry or not await self._backoff(attempt, deadline):
                    return _error(fault, f" (after {attempt + 1} tries)")
                attempt += 1
            finally:
                if resp is not None:
                    await resp.aclose()

    async def stream(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Deltas from the API's SSE stream; retried only while nothing has been yielded."""
        body = self.body(payload, stream=True)
        deadline = _Deadline(self.cfg.timeout_s)
        attempt = 0
        while True:
            started = False
            resp = None
            try:
                t0 = time.perf_counter()
                resp = await self._open(body, deadline, attempt)
                if resp.status_code != 200:
                    await deadline.wait(resp.aread())
                    raise _status_fault(resp.status_code)
                t_first = None
                n_bytes = 0
                usage: dict[str, Any] = {}
                finish = "stop"
                model = self.cfg.model
                lines = resp.aiter_lines()
                while True:
                    try:
                        line = await deadline.wait(lines.__anext__())
                    except StopAsyncIteration:
                        break
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
                if started:
                    yield _error(fault, " (mid-stream)")
                    return
                if not fault.retry or not await self._backoff(attempt, deadline):
                    yield _error(fault, f" (after {attempt + 1} tries)")
                    return
                attempt += 1
            finally:
                if resp is not None:
                    await resp.aclose()

    async def probe(self) -> float | None:
        """Seconds for a `GET /models` round trip (any HTTP answer counts); None if unreachable."""
        t0 = time.perf_counter()
        try:
            resp = await self.client.get("/models", timeout=self.cfg.connect_timeout_s)
            await resp.aread()
        except Exception:
            return None
        return time.perf_counter() - t0

    async def aclose(self) -> None:
        await self.client.aclose()
