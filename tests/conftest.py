"""Shared fixtures: the real public data, one data build, one loopback Ray cluster a session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

# Keep Ray on loopback, tokenless and quiet, and everything offline, before anything imports it.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (CI and developers have it beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def data_build(shared_data: Path, tmp_path_factory) -> Path:
    """A full build of every source, made once per session."""
    from localroute.data.build import build

    out = tmp_path_factory.mktemp("build") / "data"
    build(out, shared_data, log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for the whole session: 4 logical CPUs on 2 cores, no dashboard."""
    import ray

    from localroute.config import RayConfig
    from localroute.ray_runtime import init_ray

    init_ray(RayConfig(num_cpus=4))
    yield ray
    ray.shutdown()
