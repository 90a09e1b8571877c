"""`serve run`, as README documents it, is as closed as `localroute serve`: it joins the Ray head
`localroute ray start` holds, so every process of both listens on loopback only (Serve's replica
gRPC ports aside, which take only Ray's token), calls without Ray's token are refused, usage
stats are off, and `localroute ray stop` leaves nothing running.

The documented command lines run as subprocesses, with the test session's Ray settings removed
from their environment (what a user's shell has); helpers come from tests/test_ray_security.py.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from test_ray_security import (
    _AGENT_PATH,
    RAY_SETTINGS,
    _alive,
    _descendants,
    _env_of,
    _http_status,
    _is_loopback,
    _kill,
    _listening,
    _wait_gone,
)

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's `localroute` and `serve`
KEY = "sk-test-" + "serve-run"


def _configs(tmp: Path) -> tuple[Path, Path, int]:
    """configs/serve.yaml on a free port, naming configs/local.yaml's ray and serve sections
    with the tiny local model (SmolLM2 takes minutes to load on 2 cores)."""
    from serve.app import free_port

    local = yaml.safe_load((REPO / "configs" / "local.yaml").read_text())
    s = local["serve"]
    s["local"].update(model="tiny", tiny_dir=str(tmp / "tiny"), max_new_tokens=4)
    s["latency"]["links_file"] = str(REPO / "configs" / s["latency"]["links_file"])
    run_cfg = tmp / "local.yaml"
    run_cfg.write_text(yaml.safe_dump({"ray": local["ray"], "serve": s}))
    port = free_port()
    serve = yaml.safe_load((REPO / "configs" / "serve.yaml").read_text())
    serve["http_options"]["port"] = port
    serve["applications"][0]["args"]["config"] = str(run_cfg)
    serve_cfg = tmp / "serve.yaml"
    serve_cfg.write_text(yaml.safe_dump(serve))
    return run_cfg, serve_cfg, port


def _exports(stdout: str) -> dict[str, str]:
    """What `eval "$(localroute ray start)"` sets."""
    pairs = [shlex.split(line)[1] for line in stdout.splitlines() if line.startswith("export ")]
    return dict(pair.split("=", 1) for pair in pairs)


def _get(url: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0  # not listening yet


def _wait_served(url: str, serve_run: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _get(f"{url}/v1/models", KEY) != 200:
        assert serve_run.poll() is None, f"serve run exited:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, (
            f"not served in {timeout_s} s:\n{log.read_text()[-4000:]}"
        )
        time.sleep(0.5)


def _gcs_refuses(address: str, env: dict[str, str]) -> bool:
    call = f"from tests.test_ray_security import _gcs_call; _gcs_call({address!r})"
    proc = subprocess.run(
        [sys.executable, "-c", call], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    if proc.returncode == 0:
        return False
    assert "auth" in proc.stderr.lower(), proc.stderr[-2000:]  # refused, not failed otherwise
    return True


def _replica_refuses(port: int) -> None:
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as e:
        channel.unary_unary("/ray.serve.ASGIService/HandleRequest")(b"", timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, (port, e.value)


def _ours(state: Path) -> set[int]:
    """Every process the holder of this state folder runs (found even when `start` failed)."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(state).encode() in (proc / "cmdline").read_bytes():
                found |= _descendants(int(proc.name))
        except OSError:
            continue
    return found


def test_serve_run_joins_a_loopback_head_with_token_auth(tmp_path):
    run_cfg, serve_cfg, port = _configs(tmp_path)
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k not in RAY_SETTINGS}
    env.update(
        LOCALROUTE_RAY_STATE_DIR=str(state),
        LOCALROUTE_API_KEYS=KEY,
        OPENAI_API_KEY="x",
        HF_HUB_OFFLINE="1",
    )
    log = tmp_path / "serve-run.log"
    pids: set[int] = set()
    serve_run = None
    try:
        # README: eval "$(localroute ray start)"; serve run --address "$RAY_ADDRESS" ...;
        # eval "$(localroute ray stop)"
        start = [str(BIN / "localroute"), "ray", "start", "--config", str(run_cfg)]
        started = subprocess.run(start, cwd=REPO, env=env, capture_output=True, text=True,
                                 timeout=150)  # fmt: skip
        assert started.returncode == 0, started.stderr[-4000:]
        joined = _exports(started.stdout)
        assert joined["RAY_ADDRESS"].startswith("127.0.0.1:")
        assert joined["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" not in joined
        assert joined["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
        assert joined["RAY_USAGE_STATS_ENABLED"] == "0"
        holder = json.loads((state / "head.json").read_text())["pid"]
        run = [str(BIN / "serve"), "run", "--address", joined["RAY_ADDRESS"], str(serve_cfg)]
        with log.open("w") as out:
            serve_run = subprocess.Popen(run, cwd=REPO, env={**env, **joined}, stdout=out,
                                         stderr=subprocess.STDOUT)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        _wait_served(url, serve_run, log, timeout_s=120)
        pids = _descendants(holder) | _descendants(serve_run.pid)

        # Loopback only, but for Serve's replica gRPC ports (README), which take only the token.
        sockets = _listening(pids)
        names = {name for *_, name in sockets}
        assert {"gcs_server", "raylet"} <= names, sockets  # the check saw the real servers
        assert ("127.0.0.1", port) in {s[:2] for s in sockets}  # and Serve's proxy
        replicas = {pid for *_, pid, _ in sockets if _cmdline(pid).startswith("ray::ServeReplica:")}
        assert replicas, sockets
        for address, port_, pid, _ in sockets:
            if not _is_loopback(address):
                assert pid in replicas, (address, port_, _cmdline(pid))
                _replica_refuses(port_)

        # Ray's token: refused without it or with a wrong one, accepted with it.
        token_path = Path(joined["RAY_AUTH_TOKEN_PATH"])
        assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(token_path.parent.stat().st_mode) == 0o700
        address = joined["RAY_ADDRESS"]
        assert _gcs_refuses(address, {**env, "RAY_AUTH_MODE": "disabled"})
        assert _gcs_refuses(address, {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "nope"})
        assert not _gcs_refuses(address, {**env, **joined})
        agents = [s[1] for s in sockets if s[3].startswith("ray::RuntimeEnv")]
        assert agents and _http_status(f"http://127.0.0.1:{agents[0]}{_AGENT_PATH}", None) == 401
        token = token_path.read_text()
        for text in (started.stdout, started.stderr, log.read_text(), _read(state / "head.log")):
            assert token not in text

        # The app's own key, and usage stats off in the servers.
        assert _get(f"{url}/v1/models", None) == 401
        gcs = next(pid for *_, pid, name in sockets if name == "gcs_server")
        assert _env_of(gcs).get("RAY_USAGE_STATS_ENABLED") == "0"

        # Ctrl-C ends `serve run` (it removes the app); `localroute ray stop` ends the rest.
        serve_run.send_signal(signal.SIGINT)
        assert serve_run.wait(timeout=60) == 0, log.read_text()[-4000:]
        stop = [str(BIN / "localroute"), "ray", "stop"]
        stopped = subprocess.run(stop, cwd=REPO, env=env, capture_output=True, text=True,
                                 timeout=120)  # fmt: skip
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.split() == [w for k in joined for w in ("unset", k)]  # eval clears
        assert not _wait_gone(pids, 30), "processes outlived `localroute ray stop`"
        assert not token_path.parent.exists() and not (state / "head.json").exists()
    finally:
        if serve_run is not None and serve_run.poll() is None:
            serve_run.kill()
            serve_run.wait(timeout=10)
        if _ours(state):
            stop = [str(BIN / "localroute"), "ray", "stop"]
            subprocess.run(stop, cwd=REPO, env=env, capture_output=True, timeout=120)
        _kill(_alive(pids | _ours(state)))


def _cmdline(pid: int) -> str:
    return _read(Path(f"/proc/{pid}/cmdline")).replace("\0", " ")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
