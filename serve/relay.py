"""Calling the two sides, falling back, and relaying a stream to the client as SSE.

The local side is a Serve deployment behind a handle; the cloud side is a `CloudClient` in this
process (no Ray hop). Both answer plain dicts: a reply, or `{"error": {"kind", "message"}}`;
streams yield `{"delta"}` items and one `{"done", ...stats}` item.

Fault rules, the same for both sides:

* anything that goes wrong before the first byte reaches the client (an error answer, a timeout,
  backpressure, a replica that died, any exception) falls back to the other side;
* after the first byte, the client gets an OpenAI-style SSE error event
  (`data: {"error": {...}}`) and `data: [DONE]`: a clean end, never a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from localroute.core.live import LocalLoad
from serve.cloud_client import CloudClient
from serve.config import ServeConfig
from serve.protocol import SSE_DONE, APIError, chunk, error_body, sse

log = logging.getLogger("ray.serve")

OTHER = {"local": "cloud", "cloud": "local"}


def fault(exc: BaseException, side: str) -> dict[str, Any]:
    """An exception from a call as the error dict the fallback logic reads."""
    from ray.exceptions import ActorUnavailableError, RayActorError
    from ray.serve.exceptions import BackPressureError

    if isinstance(exc, TimeoutError):
        kind, msg = "timeout", f"{side} model timed out"
    elif isinstance(exc, BackPressureError):
        kind, msg = "overloaded", f"{side} deployment is full"
    elif isinstance(exc, RayActorError | ActorUnavailableError):
        kind, msg = "replica_died", f"{side} replica died or is unreachable"
    else:
        kind, msg = "deployment", f"{side} call failed ({type(exc).__name__})"
    return {"error": {"kind": kind, "message": msg}}


class _Stream:
    """One open stream: a Serve response generator (local) or an async generator (cloud)."""

    def __init__(self, gen, timeout_s: float) -> None:
        self.gen, self.timeout_s = gen, timeout_s

    async def next(self) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self.gen.__anext__(), self.timeout_s)
        except StopAsyncIteration:
            return None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if hasattr(self.gen, "cancel"):
                self.gen.cancel()
            else:
                await self.gen.aclose()


class SideHealth:
    """Whether the local side can take new requests. A call that finds its replica dead marks it
    down: new requests then go straight to the cloud (a Serve handle would hold them until a new
    replica has started and loaded its model, 10-20 s) while a probe (`info()`, every
    `interval_s`) waits for a replica to answer again, which marks it up. Only a dead replica
    marks it down: a busy one (timeouts, backpressure) is the queue's business, not health's."""

    def __init__(self, probe: Callable[[], Any], interval_s: float = 0.5, running=None) -> None:
        self.probe, self.interval_s = probe, interval_s
        self.running = running  # () -> awaitable running-replica count, or None
        self.down_since: float | None = None
        self._task: asyncio.Task | None = None
        self._poll: asyncio.Task | None = None

    def start_polling(self, every_s: float = 1.0) -> None:
        """A second signal for a death no request noticed: Serve's own count of running local
        replicas (its controller marks a dead one within its health-check period)."""
        if self.running is not None and self._poll is None:
            self._poll = asyncio.get_running_loop().create_task(self._count(every_s))

    async def _count(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                if self.up and await self.running() == 0:
                    self.failed("replica_died")
            except Exception:  # noqa: BLE001 - no answer from the controller: no verdict
                continue

    @property
    def up(self) -> bool:
        return self.down_since is None

    def failed(self, kind: str | None) -> None:
        if kind != "replica_died" or not self.up:
            return
        self.down_since = time.monotonic()
        log.warning("local side down (a replica died): new requests go to the cloud")
        self._task = asyncio.get_running_loop().create_task(self._watch())

    def answered(self) -> None:
        """A local replica answered (the probe, /readyz): new requests may go local again."""
        if self.down_since is not None:
            log.warning("local side answers again after %.1f s", time.monotonic() - self.down_since)
        self.down_since = None

    async def _watch(self) -> None:
        while not self.up:
            try:
                await asyncio.wait_for(self.probe(), max(1.0, 2 * self.interval_s))
                self.answered()
            except Exception:  # noqa: BLE001 - still down: try again
                await asyncio.sleep(self.interval_s)


DOWN = {"kind": "down", "message": "local side down (a replica died); the cloud answers"}


class Dispatcher:
    def __init__(self, cfg: ServeConfig, local, cloud: CloudClient, load: LocalLoad) -> None:
        self.cfg = cfg
        self.local = local
        self.local_stream = local.options(stream=True)
        self.cloud = cloud
        self.load = load
        self.health = SideHealth(lambda: self.local.info.remote(), running=self._running)

        self.timeouts = {
            "local": cfg.local.timeout_s * (cfg.local.retries + 1) + 5.0,
            "cloud": cfg.cloud.timeout_s + 5.0,  # a guard: the client keeps its own deadline
        }
        self.tries = {"local": cfg.local.retries + 1, "cloud": 1}  # the client retries itself

    async def _running(self) -> int | None:
        """Serve's count of RUNNING replicas of the local deployment (None: not found)."""
        from ray import serve

        st = await asyncio.to_thread(serve.status)
        app = st.applications.get(self.local.app_name)
        dep = app.deployments.get(self.local.deployment_name) if app else None
        return int((dep.replica_states or {}).get("RUNNING", 0)) if dep else None

    def order(self, side: str, fallback: bool = True) -> list[str]:
        return [side, OTHER[side]] if (self.cfg.fallback and fallback) else [side]

    async def _call_once(self, side: str, payload: dict[str, Any]) -> dict[str, Any]:
        if side == "cloud":
            return await asyncio.wait_for(self.cloud.generate(payload), self.timeouts["cloud"])
        response = self.local.generate.remote(payload)
        try:
            return await asyncio.wait_for(response, self.timeouts["local"])
        except TimeoutError:
            response.cancel()
            raise

    async def call(self, side: str, payload: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"error": {"kind": "error", "message": "not called"}}
        for _ in range(self.tries[side]):
            t0 = time.perf_counter()
            if side == "local":
                self.load.started()
            try:
                out = await self._call_once(side, payload)
            except Exception as exc:
                out = fault(exc, side)
            finally:
                if side == "local":
                    ok = "error" not in out
                    self.load.finished(time.perf_counter() - t0 if ok else None)
                    if not ok:
                        self.health.failed(out["error"].get("kind"))
            if "error" not in out or out["error"].get("kind") == "overloaded":
                return out
        return out

    async def unary(
        self, order: list[str], payload: dict[str, Any]
    ) -> tuple[str | None, dict[str, Any], list[tuple[str, dict]]]:
        failures: list[tuple[str, dict]] = []
        for side in order:
            if side == "local" and not self.health.up and len(order) > 1:
                failures.append((side, dict(DOWN)))  # straight to the next side
                continue
            out = await self.call(side, payload)
            if "error" not in out:
                return side, out, failures
            failures.append((side, out["error"]))
        return None, {}, failures

    async def _open_once(self, side: str, payload: dict[str, Any]):
        if side == "cloud":
            stream = _Stream(self.cloud.stream(payload), self.timeouts["cloud"])
        else:
            stream = _Stream(self.local_stream.stream.remote(payload), self.timeouts["local"])
            self.load.started()  # finished by the relay's end, or below on a failure
        try:
            first = await stream.next()
        except Exception as exc:
            first = fault(exc, side)
        if first is None:
            first = {"error": {"kind": "empty", "message": f"{side} stream ended at once"}}
        if "error" in first:
            await stream.close()
            if side == "local":
                self.load.finished(None)
                self.health.failed(first["error"].get("kind"))
            return None, first
        return stream, first

    async def open(
        self, order: list[str], payload: dict[str, Any]
    ) -> tuple[str | None, _Stream | None, dict[str, Any], list[tuple[str, dict]]]:
        """The first side whose stream yields a first item (so a failure can still fall back)."""
        failures: list[tuple[str, dict]] = []
        for side in order:
            if side == "local" and not self.health.up and len(order) > 1:
                failures.append((side, dict(DOWN)))
                continue
            first: dict[str, Any] = {}
            for _ in range(self.tries[side]):
                stream, first = await self._open_once(side, payload)
                if stream is not None:
                    return side, stream, first, failures
                if first["error"].get("kind") == "overloaded":
                    break
            failures.append((side, first["error"]))
        return None, None, {}, failures

    def all_failed(self, failures: list[tuple[str, dict]]) -> APIError:
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


async def relay(
    rid: str,
    model: str,
    served: str,
    stream: _Stream,
    first: dict[str, Any],
    include_usage: bool,
    on_end: Callable[[str, dict[str, Any] | None, bool], None],
) -> AsyncIterator[bytes]:
    """SSE chunks of one stream; `on_end(reply, stats, ok)` runs once, however it ends (ok: the
    side finished its answer; not when it failed or the client went away)."""
    created = int(time.time())
    parts: list[str] = []
    stats: dict[str, Any] | None = None
    failed = None
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
                failed = item["error"].get("kind", "error")
                break
            try:
                item = await stream.next()
            except Exception as exc:  # a timeout, a replica that died, anything
                failed = fault(exc, served)["error"]["kind"]
                break
    finally:
        if failed is not None or stats is None:
            await stream.close()
        on_end("".join(parts), stats, failed is None and stats is not None)
    if failed is not None:
        # Mid-stream failure: an OpenAI-style error event, which clients raise on, then a clean end.
        code = "timeout" if failed == "timeout" else "upstream_error"
        msg = f"{served} model failed mid-stream ({failed})"
        yield sse(error_body(msg, "server_error", code))
        yield SSE_DONE
        return
    finish = (stats or {}).get("finish_reason") or "stop"
    yield sse(chunk(rid, model, {}, finish, created=created))
    if include_usage and stats and stats.get("tokens_in") is not None:
        out = stats.get("tokens_out") or 0
        event = chunk(rid, model, {}, created=created)
        event["choices"] = []
        event["usage"] = {
            "prompt_tokens": stats["tokens_in"],
            "completion_tokens": out,
            "total_tokens": stats["tokens_in"] + out,
        }
        yield sse(event)
    yield SSE_DONE
