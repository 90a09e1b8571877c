"""The `serve:` config section: the router, the fusion parameters, both model deployments, limits.

Loaded with the run config (section key `serve`, class `ServeConfig`; `serve.app.load_serve_section`
reads it alone); every field has a default, so a config without a `serve:` section serves the
embedded default: the `random` router, the tiny local decoder, and a cloud endpoint that must be
set before cloud traffic works.
Secrets never live here: `auth.api_keys_env` and `cloud.api_key_env` name environment variables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from localroute.config import ConfigPath, bundled
from localroute.errors import ConfigError
from localroute.placement import Placement, ray_remote_args_for
from serve.feedback import FeedbackConfig


@dataclass(frozen=True)
class DeploymentScaling:
    """Serve options for one deployment: autoscaling, concurrency and the queue bound.

    `max_ongoing_requests` is set explicitly everywhere: Serve's default of 5 throttles streams.
    `max_queued_requests` bounds the queue in front of the replicas; beyond it callers get
    backpressure (HTTP 429/503 with Retry-After) instead of unbounded latency.
    """

    min_replicas: int = 1
    max_replicas: int = 2
    initial_replicas: int | None = None
    target_ongoing_requests: float = 32.0
    max_ongoing_requests: int = 64
    max_queued_requests: int = 256
    upscale_delay_s: float = 5.0
    downscale_delay_s: float = 60.0
    num_cpus: float = 0.5
    num_gpus: float = 0.0
    # Where replicas run on a mixed cluster (localroute.placement, as for Ray Data pools and Ray
    # Train workers): e.g. {kind: nvidia-h100}; it replaces num_cpus/num_gpus when given.
    placement: Placement | None = None
    # Environment of this deployment's replicas (Ray Serve tuning flags, never secrets).
    env_vars: dict[str, str] = field(default_factory=dict)

    def check(self, where: str) -> None:
        if self.min_replicas < 0:
            raise ConfigError(f"{where}.min_replicas must be >= 0, got {self.min_replicas}")
        if self.max_replicas < max(1, self.min_replicas):
            raise ConfigError(
                f"{where}.max_replicas must be >= max(1, min_replicas), got {self.max_replicas}"
            )
        if self.initial_replicas is not None and not (
            self.min_replicas <= self.initial_replicas <= self.max_replicas
        ):
            raise ConfigError(f"{where}.initial_replicas must lie in [min_replicas, max_replicas]")
        if self.max_ongoing_requests < 1:
            raise ConfigError(f"{where}.max_ongoing_requests must be >= 1")
        if self.max_queued_requests < -1 or self.max_queued_requests == 0:
            raise ConfigError(f"{where}.max_queued_requests must be >= 1 (or -1: unbounded)")
        if self.target_ongoing_requests <= 0:
            raise ConfigError(f"{where}.target_ongoing_requests must be > 0")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ConfigError(f"{where}.num_cpus/num_gpus must be >= 0")

    def options(self, backpressure: BackpressureOptions) -> dict[str, Any]:
        """Keyword arguments for `Deployment.options(...)`."""
        autoscaling = {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
        }
        if self.initial_replicas is not None:
            autoscaling["initial_replicas"] = self.initial_replicas
        if self.placement is not None:
            actor: dict[str, Any] = ray_remote_args_for(self.placement)
        else:
            actor = {"num_cpus": self.num_cpus}
            if self.num_gpus:
                actor["num_gpus"] = self.num_gpus
        if self.env_vars:
            actor["runtime_env"] = {"env_vars": dict(self.env_vars)}
        return {
            "autoscaling_config": autoscaling,
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "backpressure_config": {
                "status_code": backpressure.status_code,
                "retry_after_s": backpressure.retry_after_s,
            },
            "ray_actor_options": actor,
        }


@dataclass(frozen=True)
class BackpressureOptions:
    """What an overloaded deployment answers: 503 (default) or 429, with a Retry-After."""

    status_code: int = 503
    retry_after_s: float = 1.0

    def check(self, where: str) -> None:
        if self.status_code not in (429, 503):
            raise ConfigError(f"{where}.status_code must be 429 or 503, got {self.status_code}")
        if self.retry_after_s < 0:
            raise ConfigError(f"{where}.retry_after_s must be >= 0")


@dataclass(frozen=True)
class RouterSpec:
    """Which router gives p: a trained artifact directory, or a registry name (untrained ones)."""

    artifact: ConfigPath | None = None  # relative: to the config file
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    default_task: str = "unknown"  # the `task` column for requests that do not name one
    # An artifact trained for other models than the deployed ones is refused unless declared
    # here, trained model -> deployed model (localroute.routers.trained_for); every response
    # then says "router trained for X, serving Y".
    stand_ins: dict[str, str] = field(default_factory=dict)
    # > 0: every ingress replica polls the artifact's router.json this often and adopts a new
    # artifact (a new fingerprint) without a restart (serve/served_router.py); 0: never.
    watch_s: float = 0.0

    def check(self, where: str) -> None:
        if (self.artifact is None) == (self.name is None):
            raise ConfigError(f"{where}: give exactly one of artifact (a directory) or name")

    @property
    def label(self) -> str:
        return self.name or "artifact"


@dataclass(frozen=True)
class LatencySpec:
    """Seed 001's cost model for the deployed models (localroute.core.operating_point):
    a preset's per-token times over a link from links.yaml, the deployed local model's measured
    per-token times where `measured` names its profile rows, and answer lengths bounded by
    `local.max_new_tokens`, `cloud.max_tokens` and each request's `max_tokens`.

    With `live: true` measured estimates replace the prior once they rest on `min_samples`
    observations: the cloud RTT (delta), its bandwidth (B), the local seconds per token
    (gamma_s) and each side's answer length; an estimate no longer fed decays back to the prior
    with half-life `decay_half_life_s`, so a side that stops being chosen cannot stay locked out.
    `workload` only names the preset workload whose alpha a router served by name uses.
    """

    links_file: ConfigPath = field(default_factory=lambda: bundled("links.yaml"))
    preset: str = "paper-table1"
    workload: str = "gsm8k"
    link: str | None = None  # None: the preset's own link
    measured: ConfigPath | None = None  # outcome rows of the deployed local model (profile)
    live: bool = True
    ewma_weight: float = 0.2  # weight of a new observation
    probe_interval_s: float = 5.0  # how often the RTT to the cloud API is probed (lazily)
    min_transfer_bytes: int = 2048  # bodies smaller than this say nothing about bandwidth
    min_samples: int = 3  # a live estimate replaces the prior once it rests on this many
    decay_half_life_s: float | None = 60.0  # None: live estimates never decay

    def check(self, where: str) -> None:
        if not 0 < self.ewma_weight <= 1:
            raise ConfigError(f"{where}.ewma_weight must be in (0, 1], got {self.ewma_weight}")
        if self.probe_interval_s <= 0:
            raise ConfigError(f"{where}.probe_interval_s must be > 0")
        if self.min_samples < 1:
            raise ConfigError(f"{where}.min_samples must be >= 1")
        if self.decay_half_life_s is not None and self.decay_half_life_s <= 0:
            raise ConfigError(f"{where}.decay_half_life_s must be > 0 (or null: no decay)")


@dataclass(frozen=True)
class VLLMSpec:
    """A vLLM deployment built with ray.serve.llm (GPU clusters): LLMConfig's main fields."""

    model_id: str = "local-vllm"
    model_source: str = ""
    accelerator_type: str | None = None
    engine_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalModelConfig:
    """The small model: transformers on CPU/MPS/CUDA, or vLLM via ray.serve.llm on GPUs."""

    engine: str = "transformers"  # or "vllm"
    model: str = "tiny"  # a local directory; "tiny": the random-weight tiny decoder (tests, demo)
    tiny_dir: str = "runs/models/tiny-decoder"
    model_name: str = "local-tiny-qwen2"  # what responses report as `model`
    device: str = "auto"
    threads: int = 1
    max_new_tokens: int = 32  # default and upper bound of max_tokens on this side
    concurrency: int = 2  # generations at once per replica (CPU: keep small)
    timeout_s: float = 60.0
    retries: int = 0
    vllm: VLLMSpec = field(default_factory=VLLMSpec)
    deployment: DeploymentScaling = field(
        default_factory=lambda: DeploymentScaling(max_ongoing_requests=16, max_queued_requests=256)
    )

    def check(self, where: str) -> None:
        if self.engine not in ("transformers", "vllm"):
            raise ConfigError(f"{where}.engine must be transformers or vllm, got {self.engine!r}")
        if self.engine == "vllm" and not self.vllm.model_source:
            raise ConfigError(f"{where}.vllm.model_source is required when engine is vllm")
        if self.max_new_tokens < 1 or self.concurrency < 1 or self.timeout_s <= 0:
            raise ConfigError(f"{where}: max_new_tokens, concurrency, timeout_s must be positive")
        if self.retries < 0:
            raise ConfigError(f"{where}.retries must be >= 0")


@dataclass(frozen=True)
class CloudModelConfig:
    """The large model behind an OpenAI-compatible API; the key comes from `api_key_env`."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 30.0  # one deadline per request: connect, first byte, body and retries
    connect_timeout_s: float = 3.0
    retries: int = 1  # extra tries on a timeout, a connection error or a 5xx/429
    retry_backoff_s: float = 0.2
    max_tokens: int = 1024  # upper bound on max_tokens forwarded
    max_connections: int = 256
    deployment: DeploymentScaling = field(
        default_factory=lambda: DeploymentScaling(max_ongoing_requests=256, max_queued_requests=512)
    )

    def check(self, where: str) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.base_url must start with http:// or https://")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ConfigError(f"{where}: timeouts must be > 0")
        if self.retries < 0 or self.retry_backoff_s < 0:
            raise ConfigError(f"{where}.retries and retry_backoff_s must be >= 0")
        if self.max_tokens < 1:  # also the cloud's answer-length bound in the latency model
            raise ConfigError(f"{where}.max_tokens must be >= 1, got {self.max_tokens}")


@dataclass(frozen=True)
class AuthConfig:
    """Bearer API keys: listed here and/or comma-separated in the variable `api_keys_env`.

    With `required: true` (the default) and no key configured, the server refuses to start, so
    it never runs open by accident; set `required: false` to serve without keys (loopback dev).
    """

    required: bool = True
    api_keys: list[str] = field(default_factory=list)
    api_keys_env: str = "LOCALROUTE_API_KEYS"


@dataclass(frozen=True)
class LimitsConfig:
    max_body_bytes: int = 1_048_576  # 413 above
    max_messages: int = 512
    max_tokens: int = 4096  # a request's max_tokens above this is a 400

    def check(self, where: str) -> None:
        if self.max_body_bytes < 1024 or self.max_messages < 1 or self.max_tokens < 1:
            raise ConfigError(f"{where}: limits must be positive (max_body_bytes >= 1024)")


@dataclass(frozen=True)
class SessionConfig:
    """Multi-turn memory: previous side and context per conversation (LRU, with a TTL)."""

    header: str = "x-session-id"
    max_sessions: int = 100_000
    ttl_s: float = 3600.0


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # loopback by default; a cluster ingress sets 0.0.0.0 explicitly
    port: int = 8000
    app_name: str = "localroute"
    route_prefix: str = "/"
    router: RouterSpec = field(default_factory=lambda: RouterSpec(name="random"))
    theta: float | None = None  # on p~; None: the artifact's, chosen on val with its alpha
    alpha: float | None = None  # None: the artifact's (chosen on val), else the workload's
    # Hold this share of traffic on the cloud: theta follows the (1 - share) quantile of the
    # last `target_window` load-free fused scores, within `theta_bounds` (null: unbounded, the
    # default: p~ = p - alpha (T_e - T_s) is not confined to [0, 1]), once `target_min_samples`
    # are in (localroute.core.live.QuantileTracker; per ingress replica). None: theta as
    # configured above. A theta in the model name (`router-<name>-<theta>`) still overrides it.
    target_cloud_share: float | None = None
    theta_bounds: list[float] | None = None
    target_window: int = 200
    target_min_samples: int = 20
    fallback: bool = True  # a failed side falls back to the other one
    access_log: bool = True
    # Serve's throughput-optimized mode behind HAProxy: ingress replicas serve HTTP themselves,
    # no Python proxy hop (benchmarks/bench_router_hop.py). Ray reads it at start, so the
    # process that starts Ray must apply `serve.app.ray_env(cfg)` to its environment first.
    # Ray 2.60 then binds HAProxy and the replicas' HTTP ports on all interfaces, whatever
    # `host` says: for clusters behind a firewall (README, "Secure by default").
    throughput_optimized: bool = False
    latency: LatencySpec = field(default_factory=LatencySpec)
    sessions: SessionConfig = field(default_factory=SessionConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    backpressure: BackpressureOptions = field(default_factory=BackpressureOptions)
    local: LocalModelConfig = field(default_factory=LocalModelConfig)
    cloud: CloudModelConfig = field(default_factory=CloudModelConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)  # shadow labels, off
    ingress: DeploymentScaling = field(
        default_factory=lambda: DeploymentScaling(
            max_replicas=2,
            max_ongoing_requests=256,
            max_queued_requests=1024,
            num_cpus=0.25,
        )
    )

    def check(self, where: str) -> None:
        if self.theta is not None and not math.isfinite(self.theta):
            raise ConfigError(f"{where}.theta must be a finite number, got {self.theta}")
        from localroute.core.operating_point import TargetShare

        b = self.theta_bounds
        if b is not None and len(b) != 2:
            raise ConfigError(f"{where}.theta_bounds must be [lo, hi] with lo <= hi, got {b}")
        share = 0.0 if self.target_cloud_share is None else self.target_cloud_share
        TargetShare(
            share, None if b is None else tuple(b), self.target_window, self.target_min_samples
        ).check(where)  # the same checks whether or not a target is set
        if self.alpha is not None and self.alpha < 0:
            raise ConfigError(f"{where}.alpha must be >= 0, got {self.alpha}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"{where}.port must be in [0, 65535], got {self.port}")
        if not self.route_prefix.startswith("/"):
            raise ConfigError(f"{where}.route_prefix must start with '/'")

    def target(self):
        """The target-share rule (localroute.core.operating_point.TargetShare), or None."""
        from localroute.core.operating_point import TargetShare

        if self.target_cloud_share is None:
            return None
        b = self.theta_bounds
        return TargetShare(
            self.target_cloud_share,
            None if b is None else tuple(b),
            self.target_window,
            self.target_min_samples,
        )

    def deployed_names(self) -> dict[str, list[str]]:
        """Per role, the names the deployed model goes by (the first is shown): what a router
        artifact's candidates are checked against (localroute.routers.trained_for)."""
        from localroute.models.registry import MODELS

        local = [self.local.model_name, self.local.model]
        if self.local.model in MODELS:
            local.insert(0, MODELS[self.local.model].label)
        if self.local.engine == "vllm":
            local.append(self.local.vllm.model_source)
        return {"local": local, "cloud": [self.cloud.model]}

    def deployment_latency(self):
        """The latency model inputs of the deployed models (what train and evaluate choose and
        replay the operating point on, and the server's prior)."""
        from localroute.core.operating_point import DeploymentLatency

        lat = self.latency
        return DeploymentLatency(
            links_file=str(lat.links_file),
            preset=lat.preset,
            link=lat.link,
            local_max_tokens=self.local.max_new_tokens,
            cloud_max_tokens=self.cloud.max_tokens,
            measured=str(lat.measured) if lat.measured else None,
        )
