"""The Engine protocol: messages in, text plus the timings and token counts that were measured.

Every engine (transformers on CPU/MPS/CUDA, vLLM, any OpenAI-compatible endpoint) returns the same
`Generation`, so the profiler, the Serve deployments and the cost model read one shape. A timing
an engine cannot observe is None, never 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict[str, str]]  # [{"role": "user", "content": "..."}, ...]
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = None


@dataclass(frozen=True)
class TokenSpan:
    """Tokens one request processed between two `time.perf_counter()` instants."""

    start: float
    end: float
    tokens: int


@dataclass
class Generation:
    text: str
    tokens_in: int | None = None
    tokens_out: int | None = None
    ttft_s: float | None = None  # time to first token
    tpot_s: float | None = None  # mean time per output token after the first
    latency_s: float | None = None  # end to end
    error: str | None = None  # set instead of raising, so one bad query never stops a batch
    extra: dict = field(default_factory=dict)
    # When this request's prefill and decode ran; empty when the engine cannot see it (remote).
    spans: list[TokenSpan] = field(default_factory=list)


@runtime_checkable
class Engine(Protocol):
    name: str  # "transformers", "vllm", "openai"
    model: str  # the model id or path it serves
    hardware: str  # e.g. "cpu", "cuda:NVIDIA H100 80GB HBM3", "mps"

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        """Answer a batch; one Generation per request, in order."""
        ...

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Text deltas of one answer as they are produced."""
        ...

    def close(self) -> None: ...
