"""Any OpenAI-compatible chat endpoint (a cloud model, a remote vLLM server), streamed.

Streaming is what makes TTFT observable from the client: the first content chunk's arrival.
Token counts come from the server's `usage` (requested with `include_usage`); where a server omits
it they stay None. The API key is read from the environment variable the config names, never from
the config itself. Requests of a batch run concurrently on a thread pool.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from localroute.engines.base import Generation, GenerationRequest


class OpenAIEngine:
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 120.0,
        hardware: str = "remote",
    ):
        from openai import OpenAI

        self.model = model
        self.hardware = hardware
        self.concurrency = concurrency
        # Local servers (vLLM) accept any key; a missing variable is sent as a placeholder.
        key = os.environ.get(api_key_env) or "EMPTY"
        self.client = OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=0)

    def _create(self, request: GenerationRequest):
        kwargs = {}
        if request.seed is not None:
            kwargs["seed"] = request.seed
        return self.client.chat.completions.create(
            model=self.model,
            messages=request.messages,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            stream=True,
            stream_options={"include_usage": True},
            **kwargs,
        )

    def _one(self, request: GenerationRequest) -> Generation:
        t0 = time.perf_counter()
        chunks: list[str] = []
        times: list[float] = []
        usage = None
        try:
            for chunk in self._create(request):
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        chunks.append(choice.delta.content)
                        times.append(time.perf_counter())
        except Exception as exc:
            return Generation(text="".join(chunks), error=f"{type(exc).__name__}: {exc}")
        end = time.perf_counter()
        n_out = usage.completion_tokens if usage else None
        ttft = times[0] - t0 if times else None
        tpot = None
        if times and n_out and n_out > 1:
            tpot = (times[-1] - times[0]) / (n_out - 1)
        return Generation(
            text="".join(chunks),
            tokens_in=usage.prompt_tokens if usage else None,
            tokens_out=n_out,
            ttft_s=ttft,
            tpot_s=tpot,
            latency_s=end - t0,
        )

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(requests)))) as pool:
            return list(pool.map(self._one, requests))

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        for chunk in self._create(request):
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    yield choice.delta.content

    def close(self) -> None:
        self.client.close()
