"""A stand-in local model deployment for tests and the demo: no engine, scripted behaviour.

It speaks the local side's protocol (`generate`, streaming `stream`, `info`) and answers
`local: <last user message>`, streamed word by word every `delay_s`. Faults on demand:

* `start_delay_s`: the replica takes that long to start (readiness vs liveness);
* a last user message containing `DIE_MID_STREAM`: the replica process exits after two
  deltas of a stream (a replica that dies while a client reads it), or before a unary answer;
* `context_window`: what `info()` reports, as the transformers deployment reads it from the
  model's config.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

DIE_MID_STREAM = "DIE_MID_STREAM"


@serve.deployment(name="EchoLocal")
class EchoLocal:
    def __init__(
        self,
        delay_s: float = 0.0,
        start_delay_s: float = 0.0,
        context_window: int | None = 2048,
        model_name: str = "echo-local",
        answers: dict[str, str] | None = None,
    ) -> None:
        time.sleep(start_delay_s)
        self.delay_s = delay_s
        self.window = context_window
        self.model_name = model_name
        self.answers = answers or {}  # scripted answers by prompt (a published outcome)

    def info(self) -> dict[str, Any]:
        return {"model": self.model_name, "hardware": "none", "context_window": self.window}

    def _text(self, payload: dict[str, Any]) -> str:
        users = [m["content"] for m in payload["messages"] if m["role"] == "user"]
        last = users[-1] if users else ""
        return self.answers.get(last, f"local: {last}")

    async def generate(self, payload: dict[str, Any]) -> dict[str, Any]:
        text = self._text(payload)
        if DIE_MID_STREAM in text:
            os._exit(1)  # dies before answering: the ingress must fall back
        await asyncio.sleep(self.delay_s)
        return {
            "text": text,
            "model": self.model_name,
            "tokens_in": sum(len(m["content"].split()) for m in payload["messages"]),
            "tokens_out": len(text.split()),
            "finish_reason": "stop",
        }

    async def stream(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        text = self._text(payload)
        pieces = text.split(" ")
        for i, piece in enumerate(pieces):
            if i == 2 and DIE_MID_STREAM in text:
                await asyncio.sleep(0.5)  # the two deltas sent reach the caller first
                os._exit(1)
            await asyncio.sleep(self.delay_s)
            yield {"delta": piece if i == 0 else " " + piece}
        yield {
            "done": True,
            "model": self.model_name,
            "tokens_in": sum(len(m["content"].split()) for m in payload["messages"]),
            "tokens_out": len(pieces),
            "finish_reason": "stop",
        }


def kill_replica(deployment: str = "EchoLocal") -> None:
    """Kill the one running replica of `deployment` the way a crash would (its actor's process
    ends at once, as with SIGKILL): the failover test and benchmark."""
    import ray

    names = [
        a
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith("SERVE_REPLICA") and deployment in a["name"]
    ]
    if len(names) != 1:
        raise RuntimeError(f"expected one replica of {deployment}, found {names}")
    ray.kill(ray.get_actor(names[0]["name"], namespace=names[0]["namespace"]), no_restart=True)
