"""Start or join Ray the same way in every job: loopback-only when local, quiet, no token files."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from localroute.config import RayConfig

# Set before Ray is imported or started: keep a local instance on 127.0.0.1 and write no token
# under the home directory.
LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


def init_ray(cfg: RayConfig, **kwargs) -> bool:
    """Connect to Ray; returns True when this call started it (so the caller shuts it down)."""
    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    if ray.is_initialized():
        return False
    if cfg.address:
        ray.init(address=cfg.address, log_to_driver=True, **kwargs)
        return True
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
    import ray

    started = init_ray(cfg, **kwargs)
    try:
        yield
    finally:
        if started:
            ray.shutdown()
