"""Engines: one protocol (base.Engine) for every way of running a model, built by name.

Heavy libraries (torch, vllm, openai) are imported only by the engine that needs them.
"""

from __future__ import annotations

from localroute.engines.base import Engine, Generation, GenerationRequest, TokenSpan

ENGINES = {
    "transformers": "localroute.engines.hf:TransformersEngine",
    "vllm": "localroute.engines.vllm_engine:VLLMEngine",
    "openai": "localroute.engines.openai_engine:OpenAIEngine",
}


def make_engine(name: str, model: str, **options) -> Engine:
    """Build the engine registered as `name` for `model`; options go to its constructor."""
    import importlib

    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    module, _, cls = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), cls)(model, **options)


__all__ = ["ENGINES", "Engine", "Generation", "GenerationRequest", "TokenSpan", "make_engine"]
