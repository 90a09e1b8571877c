"""Online routing on Ray Serve: an OpenAI-compatible router in front of a local and a cloud model.

Modules, each small and named for what it holds:

* `config`        the `serve:` config section (`ServeConfig`), no Ray import
* `protocol`      OpenAI wire format: request validation, responses, SSE chunks, errors
* `guard`         API key check, JSON content type and body size limit
* `decision`      what the ingress reads before deciding: model name, router features, token
                  estimate, sessions (no Ray; the decision is `localroute.core.controller`)
* `decided`       `DecidedRequest`, a request once decided, for the rest of its path
* `headers`       the `x-localroute-*` decision headers
* `relay`         calling each side, fallback, and the SSE relay with its mid-stream error event
* `http`          the ingress's FastAPI app: OpenAI-style errors for anything unhandled, ids
* `ingress`       `RouterIngress`, the FastAPI deployment clients talk to (/healthz, /readyz, ...)
* `served_router` the router a replica serves, swapped without a restart when its artifact changes
* `feedback`      shadow labels from live traffic (the side not chosen asked too, both graded)
* `cloud_client`  the pooled HTTP client for the cloud API, run in the ingress (one deadline)
* `local_model`   `LocalModel`, the transformers engine deployment
* `vllm_model`    vLLM via ray.serve.llm (`LLMConfig`, `LLMServer`) on GPU clusters
* `state`         `RouterState`, metrics and sessions shared by the ingress replicas
* `metrics`       Prometheus metrics of the ingress
* `app`           `build_app(config)`, `start`/`stop`, and the Serve YAML builder `app_builder`
* `demo`          `demo_stage(cfg, out_dir, router_artifact)`, the last stage of `localroute demo`
* `testing`       stand-ins for tests, the demo and benchmarks (echo cloud, scripted local
                  deployment, the cloud client as a deployment), never the product path

Nothing here imports Ray at package import time (`cli.config` imports `serve.config`).
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
