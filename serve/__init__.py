"""Online routing on Ray Serve: an OpenAI-compatible router in front of a local and a cloud model.

Modules, each small and named for what it holds:

* `config`       the `serve:` config section (`ServeConfig`), no Ray import
* `protocol`     OpenAI wire format: request validation, responses, SSE chunks, errors
* `guard`        API key check and body size limit
* `decision`     request features, live latency estimates, the local queue's wait, sessions (no Ray)
* `headers`      the `x-localroute-*` decision headers
* `relay`        calling each side, fallback, and the SSE relay with its mid-stream error event
* `ingress`      `RouterIngress`, the FastAPI deployment clients talk to (/healthz, /readyz, ...)
* `cloud_client` the pooled HTTP client for the cloud API, run in the ingress (one deadline)
* `cloud_model`  `CloudModel`, the same client as a deployment (benchmarks, direct use)
* `local_model`  `LocalModel`, the transformers engine deployment
* `vllm_model`   vLLM via ray.serve.llm (`LLMConfig`, `LLMServer`) on GPU clusters
* `state`        `RouterState`, metrics and sessions shared by the ingress replicas
* `metrics`      Prometheus metrics of the ingress
* `app`          `build_app(config)`, `start`/`stop`, and the Serve YAML builder `app_builder`
* `echo`         a loopback OpenAI-compatible server: the stand-in cloud (hang/trickle/drop/fail)
* `echo_local`   a scripted stand-in local deployment for tests (slow start, dying replica)
* `demo`         `demo_stage(cfg, out_dir, router_artifact)`, the last stage of `localroute demo`

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
