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


def engine_class(name: str) -> type:
    """The class registered as `name` (its module imports no heavy library at import time)."""
    import importlib

    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    module, _, cls = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def check_options(name: str, options: dict) -> None:
    """Refuse, before any actor starts, an option the engine's constructor does not take (an
    engine that forwards arbitrary keywords, like vLLM's, takes any) or a value it would refuse."""
    import inspect

    cls = engine_class(name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        known = [k for k in params if k not in ("self", "model")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for engine {name!r}; known: {known}")
    if hasattr(cls, "check_options"):
        cls.check_options(options)


def make_engine(name: str, model: str, **options) -> Engine:
    """Build the engine registered as `name` for `model`; options go to its constructor."""
    return engine_class(name)(model, **options)


__all__ = [
    "ENGINES",
    "Engine",
    "Generation",
    "GenerationRequest",
    "TokenSpan",
    "check_options",
    "engine_class",
    "make_engine",
]
