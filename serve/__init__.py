"""Online routing on Ray Serve: an OpenAI-compatible router in front of a local and a cloud model.

Modules, each small and named for what it holds:

* `config`      the `serve:` config section (`ServeConfig`), no Ray import
* `protocol`    OpenAI wire format: request validation, responses, SSE chunks, errors
* `decision`    router p + live latency estimates + seed 001's fusion and switch cost (no Ray)
* `ingress`     `RouterIngress`, the FastAPI deployment clients talk to
* `local_model` `LocalModel`, the transformers engine deployment
* `cloud_model` `CloudModel`, the forwarder to an OpenAI-compatible API
* `vllm_model`  vLLM via ray.serve.llm (`LLMConfig`, `LLMServer`) on GPU clusters
* `metrics`     Prometheus metrics of the ingress
* `app`         `build_app(config)`, `start`/`stop`, and the Serve YAML builder `app_builder`
* `echo`        a loopback OpenAI-compatible server: the stand-in cloud for tests and the demo
* `demo`        `demo_stage(cfg, out_dir, router_artifact)`, the last stage of `localroute demo`

Nothing here imports Ray at package import time (`localroute.config` imports `serve.config`).
"""

from __future__ import annotations

__all__ = ["build_app", "demo_stage", "start", "stop"]


def __getattr__(name: str):
    if name in ("build_app", "start", "stop"):
        from serve import app

        return getattr(app, name)
    if name == "demo_stage":
        from serve.demo import demo_stage

        return demo_stage
    raise AttributeError(name)
