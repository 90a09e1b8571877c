"""vLLM on GPU clusters through ray.serve.llm: an `LLMServer` deployment plus a thin adapter.

`build_vllm_local(cfg)` returns the adapter bound to an `LLMServer` deployment built with
`ray.serve.llm.build_llm_deployment(LLMConfig(...))` (Ray's own vLLM server, not a home-made one).
The adapter speaks the same `generate` / `stream` calls as :mod:`serve.local_model`, so the
router ingress treats both engines alike; it translates to `LLMServer.chat` (a
`ChatCompletionRequest` in; a `ChatCompletionResponse`, or lists of `data: {...}` SSE strings
when streaming, out).

Written against ray 2.60's `ray.serve.llm` API; it needs `vllm` (extra `.[gpu]`) and a GPU
node, and is not exercised by the CPU test suite.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from serve.config import LocalModelConfig


def llm_config(cfg: LocalModelConfig):
    from ray.serve.llm import LLMConfig

    d = cfg.deployment
    kwargs: dict[str, Any] = {
        "model_loading_config": {
            "model_id": cfg.vllm.model_id,
            "model_source": cfg.vllm.model_source,
        },
        "deployment_config": {
            "autoscaling_config": {
                "min_replicas": d.min_replicas,
                "max_replicas": d.max_replicas,
                "target_ongoing_requests": d.target_ongoing_requests,
            },
            "max_ongoing_requests": d.max_ongoing_requests,
        },
        "engine_kwargs": dict(cfg.vllm.engine_kwargs),
    }
    if cfg.vllm.accelerator_type:
        kwargs["accelerator_type"] = cfg.vllm.accelerator_type
    return LLMConfig(**kwargs)


@serve.deployment(name="VLLMLocalModel")
class VLLMLocalModel:
    def __init__(self, llm, cfg: LocalModelConfig) -> None:
        self.llm = llm.options(stream=True)
        self.cfg = cfg

    def info(self) -> dict[str, Any]:
        """Name and context window: vLLM's `max_model_len` if set, else the model's config."""
        from serve.local_model import context_window

        window = self.cfg.vllm.engine_kwargs.get("max_model_len")
        if window is None:
            window = context_window(self.cfg.vllm.model_source)
        return {"model": self.cfg.vllm.model_id, "hardware": "vllm", "context_window": window}

    def _request(self, payload: dict[str, Any], stream: bool):
        from ray.serve.llm.openai_api_models import ChatCompletionRequest

        args: dict[str, Any] = {
            "model": self.cfg.vllm.model_id,
            "messages": payload["messages"],
            "max_tokens": min(payload.get("max_tokens") or self.cfg.max_new_tokens, 1 << 20),
            "temperature": payload.get("temperature") or 0.0,
            "stream": stream,
        }
        if payload.get("seed") is not None:
            args["seed"] = payload["seed"]
        if stream:
            args["stream_options"] = {"include_usage": True}
        return ChatCompletionRequest(**args)

    async def generate(self, payload: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            async for resp in self.llm.chat.remote(self._request(payload, False)):
                if isinstance(resp, list):  # an error arrives as a list of ErrorResponse
                    return {"error": {"kind": "engine", "message": "vLLM error"}}
                if not hasattr(resp, "choices"):
                    return {"error": {"kind": "engine", "message": "vLLM error"}}
                usage = resp.usage
                return {
                    "text": resp.choices[0].message.content or "",
                    "model": self.cfg.model_name,
                    "tokens_in": usage.prompt_tokens if usage else None,
                    "tokens_out": usage.completion_tokens if usage else None,
                    "ttft_s": None,
                    "decode_s": None,
                    "latency_s": time.perf_counter() - t0,
                    "finish_reason": resp.choices[0].finish_reason or "stop",
                }
        except Exception as exc:
            return {"error": {"kind": "engine", "message": type(exc).__name__}}
        return {"error": {"kind": "empty", "message": "vLLM returned nothing"}}

    async def stream(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        t0 = time.perf_counter()
        first = None
        usage: dict[str, Any] = {}
        finish = "stop"
        try:
            async for batch in self.llm.chat.remote(self._request(payload, True)):
                for line in batch if isinstance(batch, list) else [batch]:
                    if not isinstance(line, str):
                        yield {"error": {"kind": "engine", "message": "vLLM error"}}
                        return
                    for event in line.split("\n\n"):
                        data = event.removeprefix("data:").strip()
                        if not data or data == "[DONE]":
                            continue
                        obj = json.loads(data)
                        if "error" in obj:
                            yield {"error": {"kind": "engine", "message": "vLLM error"}}
                            return
                        usage = obj.get("usage") or usage
                        for choice in obj.get("choices") or []:
                            finish = choice.get("finish_reason") or finish
                            delta = (choice.get("delta") or {}).get("content")
                            if delta:
                                first = first or time.perf_counter()
                                yield {"delta": delta}
        except Exception as exc:
            yield {"error": {"kind": "engine", "message": type(exc).__name__}}
            return
        end = time.perf_counter()
        yield {
            "done": True,
            "model": self.cfg.model_name,
            "tokens_in": usage.get("prompt_tokens"),
            "tokens_out": usage.get("completion_tokens"),
            "ttft_s": (first - t0) if first else None,
            "decode_s": (end - first) if first else None,
            "finish_reason": finish,
        }


def build_vllm_local(cfg: LocalModelConfig, options: dict[str, Any]):
    """The adapter deployment bound to a ray.serve.llm `LLMServer` for `cfg.vllm`."""
    from ray.serve.llm import build_llm_deployment

    server = build_llm_deployment(llm_config(cfg))
    adapter_opts = {k: v for k, v in options.items() if k != "ray_actor_options"}
    adapter_opts["ray_actor_options"] = {"num_cpus": 0.1}
    return VLLMLocalModel.options(**adapter_opts).bind(server, cfg)
