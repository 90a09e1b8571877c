"""The transformers engine: batched `generate` on CPU, MPS or CUDA, timed step by step.

Requests are packed into batches sized by tokens (engines.batching), so a long prompt does not
make its whole batch pad to its length.

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
from localroute.engines.batching import pack


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

    def __init__(
        self,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        threads: int = 0,
        max_batch_size: int = 16,
        max_batch_tokens: int = 4096,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from localroute.models.registry import model_source

        if threads:
            torch.set_num_threads(threads)
        self.model = model
        self.check_options({"max_batch_size": max_batch_size, "max_batch_tokens": max_batch_tokens})
        self.max_batch_size, self.max_batch_tokens = max_batch_size, max_batch_tokens
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

    @staticmethod
    def check_options(options: dict) -> None:
        """A batching budget this engine would refuse, refused before any model loads."""
        for key in ("max_batch_size", "max_batch_tokens"):
            value = options.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")

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
        """Answer in batches sized by tokens (engines.batching): prompts sorted by length, at most
        `max_batch_size` rows and `max_batch_tokens` padded prompt tokens per `generate` call;
        requests with different sampling settings never share a call. A failed call answers its
        own requests with the error."""
        out: list[Generation | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.max_tokens, r.temperature, r.seed), []).append(i)
        for members in groups.values():
            group = [requests[i] for i in members]
            try:
                ids, cut = self._tokenize(group, group[0].max_tokens)
            except Exception as exc:
                for i in members:
                    out[i] = Generation(text="", error=f"{type(exc).__name__}: {exc}")
                continue
            lengths = [len(x) for x in ids]
            for batch in pack(lengths, self.max_batch_size, self.max_batch_tokens):
                gens = self._run([group[k] for k in batch], [ids[k] for k in batch])
                for k, g in zip(batch, gens, strict=True):
                    if cut[k]:
                        g.extra["truncated_from"] = cut[k]
                    out[members[k]] = g
        return out

    def _run(self, requests: list[GenerationRequest], ids: list[list[int]]) -> list[Generation]:
        """One batched `generate` call over already tokenized prompts."""
        import torch

        try:
            enc, max_new = self._pad(ids, requests[0].max_tokens)
            clock = _StepClock()
            t0 = time.perf_counter()
            kwargs = {**self._gen_kwargs(requests[0]), "max_new_tokens": max_new}
            with torch.inference_mode():
                out = self.lm.generate(**enc, stopping_criteria=[clock], **kwargs)
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
        except Exception as exc:  # a failed call answers each of its requests with the error
            return [Generation(text="", error=f"{type(exc).__name__}: {exc}") for _ in requests]
        new = out[:, enc["input_ids"].shape[1] :]
        eos = self.lm.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        results = []
        for i in range(len(requests)):
            row = new[i].tolist()
            n = next((k + 1 for k, t in enumerate(row) if t in eos_ids), len(row))
            n = min(n, len(clock.times))
            results.append(self._timed(row[:n], len(ids[i]), t0, clock.times[:n]))
        return results

    def _tokenize(self, requests: list[GenerationRequest], max_tokens: int):
        """Prompt ids; one past the context window keeps its newest tokens, leaving room for the
        answer but never less than half the window. Returns (ids, per request the original length
        where cut else 0)."""
        ids = [
            self.tokenizer(p, add_special_tokens=False)["input_ids"]
            for p in self._prompts(requests)
        ]
        cut = [0] * len(ids)
        if self.context:
            keep = max(self.context - max_tokens, self.context // 2)
            for i, row in enumerate(ids):
                if len(row) > keep:
                    cut[i], ids[i] = len(row), row[-keep:]
        return ids, cut

    def _pad(self, ids: list[list[int]], max_tokens: int):
        """Left-padded tensors on the device, and the new tokens that fit the window."""
        max_new = max_tokens
        if self.context:
            max_new = max(1, min(max_tokens, self.context - max(len(r) for r in ids)))
        enc = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
        return enc.to(self.device), max_new

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

        ids, _ = self._tokenize([request], request.max_tokens)
        enc, max_new = self._pad(ids, request.max_tokens)
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
            tail = whole_characters(held)
            if tail:
                yield tail
        finally:
            thread.join()

    def close(self) -> None:
        self.lm = None


def whole_characters(text: str) -> str:
    """``text`` without the replacement characters a byte-level BPE decode leaves at its end
    when generation stopped inside a multi-byte character."""
    return text.rstrip("\ufffd")
