"""`build_app(config)`: the Serve application (router ingress, which calls the cloud API itself,
and the local model deployment).

Also the two ways to run it:

* :func:`start` / :func:`stop`: Serve on an already-started Ray (HTTP on the configured host,
  loopback by default), used by `localroute serve`, the demo, the tests and the benchmark;
* :func:`app_builder`: the application builder named in `configs/serve.yaml`, for
  `serve run configs/serve.yaml` and a KubeRay RayService (`args: {config: <localroute YAML>}`,
  optionally `cloud_base_url` and `cloud_model`).

Everything that can be wrong with a config fails here, in the driver, with one ConfigError
(unknown router, missing artifact, no API key, unreadable links file), not later in a replica.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from localroute.errors import ConfigError
from serve.config import ServeConfig


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the OS picks it), for `start(port=0)`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else (base_dir / p).resolve()


def api_key_hashes(cfg: ServeConfig, environ: dict[str, str] | None = None) -> list[str]:
    """SHA-256 digests of every configured API key (the keys themselves go no further)."""
    from serve.guard import hash_key

    env = os.environ if environ is None else environ
    keys = [k for k in cfg.auth.api_keys if k]
    keys += [k.strip() for k in env.get(cfg.auth.api_keys_env, "").split(",") if k.strip()]
    if cfg.auth.required and not keys:
        raise ConfigError(
            f"serve.auth: no API key configured; set {cfg.auth.api_keys_env}=KEY[,KEY...] or "
            "serve.auth.api_keys, or serve.auth.required: false to serve without keys"
        )
    return sorted({hash_key(k) for k in keys})


def router_source(cfg: ServeConfig, base_dir: Path, artifact: str | Path | None = None) -> dict:
    """The router to load in the ingress, checked here: an artifact directory (trained for the
    deployed models, or a declared stand-in) or a name."""
    import json

    from localroute.routers import RouterError, get_router_class
    from localroute.routers.trained_for import check_pairing

    if artifact is not None or cfg.router.artifact:
        path = _resolve(str(artifact or cfg.router.artifact), base_dir)
        if not (path / "router.json").is_file():
            raise ConfigError(f"serve.router.artifact: {path} is not a router artifact")
        try:
            info = json.loads((path / "router.json").read_text()).get("info") or {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"serve.router.artifact: {path}/router.json: {exc}") from None
        pairing = check_pairing(info, cfg.deployed_names(), cfg.router.stand_ins)
        return {"artifact": str(path), "pairing": pairing.to_dict(), "pairing_line": pairing.line()}
    try:
        cls = get_router_class(cfg.router.name or "")
    except RouterError as exc:
        raise ConfigError(f"serve.router.name: {exc}") from None
    if cls.trainable:
        raise ConfigError(
            f"serve.router.name: {cfg.router.name!r} must be trained; give serve.router.artifact"
        )
    return {"name": cfg.router.name, "params": dict(cfg.router.params)}


def latency_prior(cfg: ServeConfig, base_dir: Path):
    """The deployed models' latency model before live measurements (operating_point.py)."""
    import dataclasses

    dep = cfg.deployment_latency()
    dep = dataclasses.replace(
        dep,
        links_file=str(_resolve(dep.links_file, base_dir)),
        measured=str(_resolve(dep.measured, base_dir)) if dep.measured else None,
    )
    try:
        return dep.prior()
    except ConfigError as exc:
        raise ConfigError(f"serve.latency: {exc}") from None


def workload_alpha(cfg: ServeConfig, base_dir: Path) -> float | None:
    """For a router served by name, no artifact having chosen alpha: the latency preset's
    workload alpha (links.yaml: seed 001's Table I, 0.03 for MMLU and 0.05 for GSM8K). None when
    the config sets serve.alpha (it takes precedence: core.operating_point)."""
    from localroute.core.profiles import get_preset, load_latency_presets

    if cfg.alpha is not None:
        return None
    spec = cfg.latency
    presets = load_latency_presets(_resolve(spec.links_file, base_dir))
    alpha = get_preset(spec.preset, presets).workload(spec.workload).alpha
    if alpha is None:
        raise ConfigError(
            f"serve.alpha: workload {spec.workload!r} of latency preset {spec.preset!r} gives "
            "no alpha; set serve.alpha or serve a trained router artifact"
        )
    return alpha


def local_model_path(cfg: ServeConfig, base_dir: Path) -> str:
    from localroute.models.registry import MODELS, resolve_model

    if cfg.local.model == "tiny":
        from localroute.models.tiny import build_tiny_decoder

        return str(build_tiny_decoder(_resolve(cfg.local.tiny_dir, base_dir)))
    if cfg.local.model in MODELS:  # e.g. smollm2-135m: converted once into the user cache
        return str(resolve_model(cfg.local.model))
    path = _resolve(cfg.local.model, base_dir)
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"serve.local.model: {path} is not a model directory (no config.json) nor a "
            f"registry name ({', '.join(sorted(MODELS))})"
        )
    return str(path)


def ray_env(cfg: ServeConfig) -> dict[str, str]:
    """Environment the Ray cluster must start with for this serve config (apply it to
    `os.environ` before `ray.init` starts a local cluster, or to the head and worker pods)."""
    if not cfg.throughput_optimized:
        return {}
    return {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"}


def build_app(
    cfg: ServeConfig,
    *,
    base_dir: str | Path | None = None,
    router_artifact: str | Path | None = None,
    environ: dict[str, str] | None = None,
    local=None,
    cloud_base_url: str | None = None,
    cloud_model: str | None = None,
):
    """The Serve application for `cfg`; relative paths resolve against `base_dir` (cwd).

    `local`: a bound deployment to serve as the local side instead of the configured engine
    (it must answer `generate`, `stream` and `info`, as serve/testing/echo_local.py does).
    `cloud_base_url`, `cloud_model`: override `cfg.cloud` (the CLI's `--cloud-base-url`,
    `--cloud-model`). The cloud API is called from the ingress itself (no deployment hop); with
    more than one ingress replica a `RouterState` deployment holds what they share.
    """
    import dataclasses

    from serve.cloud_client import Secret
    from serve.ingress import RouterIngress
    from serve.local_model import LocalModel, context_window
    from serve.state import RouterState

    if cloud_base_url or cloud_model:
        cloud_cfg = dataclasses.replace(
            cfg.cloud,
            base_url=cloud_base_url or cfg.cloud.base_url,
            model=cloud_model or cfg.cloud.model,
        )
        cloud_cfg.check("serve.cloud")
        cfg = dataclasses.replace(cfg, cloud=cloud_cfg)
    base = Path(base_dir or Path.cwd()).resolve()
    env = os.environ if environ is None else environ
    bp = cfg.backpressure
    keys = api_key_hashes(cfg, env)
    source = router_source(cfg, base, router_artifact)
    prior = latency_prior(cfg, base)
    if "name" in source:
        source["alpha"] = workload_alpha(cfg, base)

    local_opts = cfg.local.deployment.options(bp)
    window = None
    if local is None and cfg.local.engine == "vllm":
        from serve.vllm_model import build_vllm_local

        try:
            local = build_vllm_local(cfg.local, local_opts)
        except ImportError as exc:
            raise ConfigError(
                f"serve.local.engine: vllm needs vLLM installed (extra .[gpu], GPU nodes): {exc}"
            ) from None
    elif local is None:
        path = local_model_path(cfg, base)
        window = context_window(path)  # until the deployment reports its own
        local = LocalModel.options(**local_opts).bind(cfg.local, path)

    cloud_key = env.get(cfg.cloud.api_key_env)
    state = None
    if cfg.ingress.max_replicas > 1:
        state = RouterState.options(ray_actor_options={"num_cpus": 0.05}).bind(
            cfg.sessions.max_sessions, cfg.sessions.ttl_s
        )
    names = {"local": cfg.local.model_name, "cloud": cfg.cloud.model}
    return RouterIngress.options(**cfg.ingress.options(bp)).bind(
        cfg,
        local,
        Secret(cloud_key) if cloud_key else None,
        keys,
        source,
        prior,
        names,
        state,
        window,
    )


def load_serve_section(path: str | Path) -> ServeConfig:
    """The `serve:` section of a run config, validated (the other sections are not read)."""
    from localroute.config import build, read_yaml

    path = Path(path)
    raw = read_yaml(path)
    try:
        return build(ServeConfig, raw.get("serve") or {}, "serve", base=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def app_builder(args: dict[str, Any]):
    """Serve application builder: `args.config` is a localroute YAML with a `serve:` section."""
    path = Path(args.get("config", "configs/local.yaml"))
    cfg = load_serve_section(path)
    return build_app(
        cfg,
        base_dir=args.get("base_dir") or Path.cwd(),
        cloud_base_url=args.get("cloud_base_url"),
        cloud_model=args.get("cloud_model"),
    )


def start(
    cfg: ServeConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    base_dir: str | Path | None = None,
    router_artifact: str | Path | None = None,
    environ: dict[str, str] | None = None,
    access_log: bool | None = None,
    **overrides: Any,
) -> str:
    """Deploy on the connected Ray and return the base URL (`http://host:port`); `overrides`
    go to :func:`build_app` (`local`, `cloud_base_url`, `cloud_model`)."""
    from ray import serve

    app = build_app(
        cfg, base_dir=base_dir, router_artifact=router_artifact, environ=environ, **overrides
    )
    host = host or cfg.host
    port = cfg.port if port is None else port
    if port == 0:
        port = free_port(host)
    log_access = cfg.access_log if access_log is None else access_log
    logging_config = {"enable_access_log": log_access, "log_level": "WARNING"}
    serve.start(
        http_options={"host": host, "port": port},
        logging_config=logging_config,
    )
    serve.run(
        app,
        name=cfg.app_name,
        route_prefix=cfg.route_prefix,
        logging_config=logging_config,
        blocking=False,
    )
    return f"http://{host}:{port}"


def stop() -> None:
    """Shut Serve down (every application and the proxies); the Ray instance stays up."""
    from ray import serve

    serve.shutdown()
