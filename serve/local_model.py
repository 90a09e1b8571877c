"""The local model deployment: the project's transformers engine on CPU, MPS or CUDA.

It answers two calls from the router ingress, both with plain data so nothing but dicts crosses
Ray: `generate(payload) -> dict` and the streaming `stream(payload)`, which yields
`{"delta": text}` items and ends with one `{"done": True, ...stats}` item. A failure is returned
as `{"error": {"kind", "message"}}` (never raised), so the ingress can fall back to the cloud.
The stats (prompt tokens, time to first token, decode time) feed the ingress's live estimate
of the local seconds per token (gamma_s in seed 001).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from serve.config import LocalModelConfig

log = logging.getLogger("ray.serve")


def _request(payload: dict[str, Any], cap: int):
    from localroute.engines.base import GenerationRequest

    max_tokens = min(payload.get("max_tokens") or cap, cap)
    return GenerationRequest(
        messages=payload["messages"],
        max_tokens=max_tokens,
        temperature=payload.get("temperature") or 0.0,
        seed=payload.get("seed"),
    )


def _error(kind: str, exc: BaseException | str) -> dict[str, Any]:
    message = exc if isinstance(exc, str) else f"{type(exc).__name__}"
    return {"error": {"kind": kind, "message": message}}


def context_window(model_path: str) -> int | None:
    """`max_position_embeddings` of the model's HF config (None when it names none)."""
    import json
    from pathlib import Path

    try:
        config = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = config.get(key) or (config.get("text_config") or {}).get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


@serve.deployment(name="LocalModel")
class LocalModel:
    """One transformers engine per replica; `concurrency` generations at a time."""

    def __init__(self, cfg: LocalModelConfig, model_path: str) -> None:
        from localroute.engines.hf import TransformersEngine

        self.cfg = cfg
        self.engine = TransformersEngine(model_path, device=cfg.device, threads=cfg.threads)
        self.model_name = cfg.model_name
        self._slots = threading.BoundedSemaphore(cfg.concurrency)
        self.context_window = context_window(model_path)

    def info(self) -> dict[str, Any]:
        """What the ingress asks at start and on /readyz: name, hardware, context window."""
        return {
            "model": self.model_name,
            "hardware": self.engine.hardware,
            "context_window": self.context_window,
        }

    def _count(self, text: str) -> int:
        return len(self.engine.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _generate_sync(self, payload: dict[str, Any]) -> dict[str, Any]:
        with self._slots:
            gen = self.engine.generate([_request(payload, self.cfg.max_new_tokens)])[0]
        if gen.error:
            return _error("engine", gen.error.split(":")[0])
        decode_s = None
        if gen.latency_s is not None and gen.ttft_s is not None:
            decode_s = gen.latency_s - gen.ttft_s
        return {
            "text": gen.text,
            "model": self.model_name,
            "tokens_in": gen.tokens_in,
            "tokens_out": gen.tokens_out,
            "ttft_s": gen.ttft_s,
            "decode_s": decode_s,
            "finish_reason": "length"
            if (gen.tokens_out or 0) >= _request(payload, self.cfg.max_new_tokens).max_tokens
            else "stop",
        }

    async def generate(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._generate_sync, payload), self.cfg.timeout_s
            )
        except TimeoutError:
            return _error("timeout", f"local generation exceeded {self.cfg.timeout_s:g}s")
        except Exception as exc:  # the ingress falls back; the client never sees a traceback
            log.warning("local generate failed: %s", type(exc).__name__)
            return _error("engine", exc)

    async def stream(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Text deltas from the engine's streamer, then one stats item."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        request = _request(payload, self.cfg.max_new_tokens)
        stop = object()

        def run() -> None:
            try:
                with self._slots:
                    for delta in self.engine.stream(request):
                        loop.call_soon_threadsafe(queue.put_nowait, delta)
            except Exception as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, stop)

        t0 = time.perf_counter()
        first = None
        parts: list[str] = []
        threading.Thread(target=run, daemon=True).start()
        deadline = t0 + self.cfg.timeout_s
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.perf_counter()))
            except TimeoutError:
                yield _error("timeout", f"local generation exceeded {self.cfg.timeout_s:g}s")
                return
            if item is stop:
                break
            if isinstance(item, BaseException):
                yield _error("engine", item)
                return
            if not item:
                continue
            if first is None:
                first = time.perf_counter()
            parts.append(item)
            yield {"delta": item}
        end = time.perf_counter()
        text = "".join(parts)
        tokens_out = self._count(text) if text else 0
        yield {
            "done": True,
            "model": self.model_name,
            "tokens_in": self._count_prompt(request),
            "tokens_out": tokens_out,
            "ttft_s": (first - t0) if first else None,
            "decode_s": (end - first) if first else None,
            "finish_reason": "length" if tokens_out >= request.max_tokens else "stop",
        }

    def _count_prompt(self, request) -> int:
        prompt = self.engine._prompts([request])[0]
        return self._count(prompt)

    def check_health(self) -> None:
        if self.engine.lm is None:
            raise RuntimeError("engine closed")
