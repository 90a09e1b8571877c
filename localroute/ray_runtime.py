"""Start or join Ray the same way in every job.

A local instance (no `ray.address`) is closed to everyone but this user on this machine:

- every Ray process (GCS, raylet, workers, agents) listens on 127.0.0.1 only;
- Ray's token authentication is on, with a random token made for this process, kept in a 0600
  file inside a 0700 temporary folder (removed at exit) and handed to Ray's own processes through
  RAY_AUTH_TOKEN_PATH; the token itself is never logged or put in the environment;
- usage stats are off.

An explicit RAY_AUTH_MODE (e.g. `disabled`) or RAY_AUTH_TOKEN/RAY_AUTH_TOKEN_PATH set by the user is
respected. A cluster address opts out of the loopback binding: the cluster's own settings (its
RAY_AUTH_MODE and token, given to this process by the environment) apply.

Import this module before `ray` where a process starts a local Ray: Ray reads the loopback switch
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER) when `ray` is first imported. `init_ray` also corrects it when
Ray was imported first.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from localroute.config import RayConfig

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray uses 127.0.0.1 for this node
USAGE_STATS_ENV = "RAY_USAGE_STATS_ENABLED"
AUTH_MODE_ENV = "RAY_AUTH_MODE"
AUTH_TOKEN_ENV = "RAY_AUTH_TOKEN"
AUTH_TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"

# At import, before Ray is imported or started (setdefault: a user's own choice wins).
_LOOPBACK_WAS_SET = LOOPBACK_ENV in os.environ
os.environ.setdefault(LOOPBACK_ENV, "0")
os.environ.setdefault(USAGE_STATS_ENV, "0")

_token_dir: Path | None = None  # this process's token folder, when it made one


def _set_loopback(local: bool) -> None:
    """Loopback for a local instance; a cluster driver uses the node's address unless the user
    asked for loopback themselves."""
    if not local and not _LOOPBACK_WAS_SET:
        os.environ.pop(LOOPBACK_ENV, None)
    elif local:
        os.environ[LOOPBACK_ENV] = "0"
    if "ray._private.ray_constants" in sys.modules:  # Ray was imported before this module
        from ray._private import ray_constants

        enabled = os.environ.get(LOOPBACK_ENV, "1" if not ray_constants.IS_WINDOWS_OR_OSX else "0")
        ray_constants.ENABLE_RAY_CLUSTER = enabled.lower() in ("1", "true")


def _local_token_path() -> Path:
    """A random token in a private file, made once per process and removed at exit."""
    global _token_dir
    if _token_dir is None or not (_token_dir / "auth_token").is_file():
        _token_dir = Path(tempfile.mkdtemp(prefix="localroute-ray-auth-"))  # mode 0700
        atexit.register(shutil.rmtree, _token_dir, True)
        path = _token_dir / "auth_token"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return _token_dir / "auth_token"


def _enable_local_auth() -> None:
    """Token authentication for a local instance, unless the user chose a mode themselves."""
    mode = os.environ.get(AUTH_MODE_ENV)
    if mode is not None and mode.lower() != "token":
        return  # an explicit opt-out (e.g. RAY_AUTH_MODE=disabled in tests)
    os.environ[AUTH_MODE_ENV] = "token"
    if not os.environ.get(AUTH_TOKEN_ENV) and not os.environ.get(AUTH_TOKEN_PATH_ENV):
        os.environ[AUTH_TOKEN_PATH_ENV] = str(_local_token_path())
    if "ray._raylet" in sys.modules:  # Ray caches the mode and token: make it read them again
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


def init_ray(cfg: RayConfig, **kwargs) -> bool:
    """Connect to Ray; returns True when this call started it (so the caller shuts it down)."""
    local = not cfg.address
    _set_loopback(local)
    import ray

    if ray.is_initialized():
        return False
    if not local:
        ray.init(address=cfg.address, **{"log_to_driver": True, **kwargs})
        return True
    _enable_local_auth()
    from localroute.placement import local_node_labels

    ray.init(
        # "local": never join another Ray this machine runs (/tmp/ray/ray_current_cluster)
        address="local",
        num_cpus=cfg.num_cpus,
        # the hardware label pools select on, so the embedded node places pools like a cluster
        labels=local_node_labels(),
        include_dashboard=cfg.include_dashboard,
        _node_ip_address="127.0.0.1",
        configure_logging=True,
        logging_level="WARNING",
        **kwargs,
    )
    return True


@contextlib.contextmanager
def ray_session(cfg: RayConfig, **kwargs) -> Iterator[None]:
    started = init_ray(cfg, **kwargs)  # before `import ray`: it sets what Ray reads at import
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def join_env() -> dict[str, str]:
    """What another process needs in its environment to join the local instance this process
    started (`serve run --address`, `ray status`): its address and the same loopback, auth and
    usage settings. The token stays in its file; only the file's path is given."""
    import ray

    keys = (LOOPBACK_ENV, USAGE_STATS_ENV, AUTH_MODE_ENV, AUTH_TOKEN_PATH_ENV)
    settings = {k: os.environ[k] for k in keys if k in os.environ}
    return {"RAY_ADDRESS": ray.get_runtime_context().gcs_address, **settings}
