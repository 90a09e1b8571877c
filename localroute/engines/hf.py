"""The transformers engine: batched `generate` on CPU, MPS or CUDA, timed step by step.

A stopping-criteria hook records the instant each decoding step finishes, so every request of a
batch gets its own TTFT (the batch's prefill), end-to-end latency (the step that produced its last
token) and TPOT without a second pass. `stream` uses transformers' TextIteratorStreamer.

`model` is a registry name (`smollm2-135m`, `tiny`: localroute.models.registry), a model directory
or a hub id. A prompt longer than the model's context window (`max_position_embeddings`) loses its
oldest tokens so that it and the new tokens fit; the Generation's `extra["truncated_from"]` says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from localroute.engines.base import Generation, GenerationRequest, TokenSpan


def pick_device(device: str) -> str:
    """'auto' resolves to cuda, then mps, then cpu."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def describe_hardware(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return f"cuda:{torch.cuda.get_device_name(torch.device(device))}"
    if device == "mps":
        return f"mps:{platform.machine()}"
    return f"cpu:{platform.machine()}"


class _StepClock:
    """A StoppingCriteria that never stops anything: it timestamps each decoding step."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class TransformersEngine:
    name = "transformers"

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", threads: int = 0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from localroute.models.registry import model_source

        if threads:
            torch.set_num_threads(threads)
        self.model = model
        path = model_source(model)
        self.device = pick_device(device)
        self.hardware = describe_hardware(self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        self.lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(self.device)
        self.lm.eval()
        self.context = getattr(self.lm.config, "max_position_embeddings", None)

    def _prompts(self, requests: list[GenerationRequest]) -> list[str]:
        return [
            self.tokenizer.apply_chat_template(
                r.messages, tokenize=False, add_generation_prompt=True
            )
            for r in requests
        ]

    def _gen_kwargs(self, r: GenerationRequest) -> dict:
        import torch

        if r.seed is not None:
            torch.manual_seed(r.seed)
        kwargs = {"max_new_tokens": r.max_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if r.temperature > 0:
            return {**kwargs, "do_sample": True, "temperature": r.temperature}
        return {**kwargs, "do_sample": False, "temperature": None, "top_p": None, "top_k": None}

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        """One batched `generate` call; requests must share max_tokens/temperature/seed."""
        if not requests:
            return []
        if len({(r.max_tokens, r.temperature, r.seed) for r in requests}) > 1:
            # Different sampling settings cannot share one generate call.
            return [g for r in requests for g in self.generate([r])]
        import torch

        try:
            enc, max_new, cut = self._encode(requests, requests[0].max_tokens)
            clock = _StepClock()
            t0 = time.perf_counter()
            kwargs = {**self._gen_kwargs(requests[0]), "max_new_tokens": max_new}
            with torch.inference_mode():
                out = self.lm.generate(**enc, stopping_criteria=[clock], **kwargs)
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
        except Exception as exc:  # a failed batch answers every request with its error
            return [Generation(text="", error=f"{type(exc).__name__}: {exc}") for _ in requests]
        new = out[:, enc["input_ids"].shape[1] :]
        eos = self.lm.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        results = []
        for i in range(len(requests)):
            ids = new[i].tolist()
            n = next((k + 1 for k, t in enumerate(ids) if t in eos_ids), len(ids))
            n = min(n, len(clock.times))
            tokens_in = int(enc["attention_mask"][i].sum())
            gen = self._timed(ids[:n], tokens_in, t0, clock.times[:n])
            if cut[i]:
                gen.extra["truncated_from"] = cut[i]
            results.append(gen)
        return results

    def _encode(self, requests: list[GenerationRequest], max_tokens: int):
        """Left-padded input ids; a prompt past the context window keeps its newest tokens.

        Returns (encoding, max_new_tokens, per request the original length where cut else 0).
        """
        ids = [
            self.tokenizer(p, add_special_tokens=False)["input_ids"]
            for p in self._prompts(requests)
        ]
        cut = [0] * len(ids)
        max_new = max_tokens
        if self.context:
            # Room for the answer, but never less than half the window for the prompt.
            keep = max(self.context - max_tokens, self.context // 2)
            for i, row in enumerate(ids):
                if len(row) > keep:
                    cut[i], ids[i] = len(row), row[-keep:]
            max_new = max(1, min(max_tokens, self.context - max(len(r) for r in ids)))
        enc = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
        return enc.to(self.device), max_new, cut

    def _timed(self, ids: list[int], tokens_in: int, t0: float, times: list[float]) -> Generation:
        text = whole_characters(self.tokenizer.decode(ids, skip_special_tokens=True))
        if not times:
            return Generation(text=text, tokens_in=tokens_in, tokens_out=0)
        first, last = times[0], times[-1]
        spans = [TokenSpan(t0, first, tokens_in + 1)]
        if len(times) > 1:
            spans.append(TokenSpan(first, last, len(times) - 1))
        return Generation(
            text=text,
            tokens_in=tokens_in,
            tokens_out=len(times),
            ttft_s=first - t0,
            tpot_s=(last - first) / (len(times) - 1) if len(times) > 1 else None,
            latency_s=last - t0,
            spans=spans,
        )

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        enc, max_new, _ = self._encode([request], request.max_tokens)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = {**self._gen_kwargs(request), "max_new_tokens": max_new}

        def run() -> None:
            with torch.inference_mode():
                self.lm.generate(**enc, streamer=streamer, **kwargs)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            # hold one chunk back: the last may end in half a character (max_tokens cut a
            # multi-byte character's tokens), which is dropped rather than sent broken
            held = ""
            for chunk in streamer:
                if chunk:
                    if held:
                        yield held
                    held = chunk
            if whole_characters(held):
                yield whole_characters(held)
        finally:
            thread.join()

    def close(self) -> None:
        self.lm = None


def whole_characters(text: str) -> str:
    """``text`` without the replacement characters a byte-level BPE decode leaves at its end
    when generation stopped inside a multi-byte character."""
    return text.rstrip("\ufffd")
