"""A local Ray started by localroute is closed to the network: every Ray process listens on
loopback only, token authentication is on (a request without the token, or with a wrong one, is
refused), usage stats are off, the token is in a private file and in no log, and nothing is left
running afterwards.

The test session already runs a Ray instance (with the tests' own settings), so the Ray under
test runs in a subprocess (this file run as a script) with those settings removed from its
environment: it sees what a user's `localroute profile` sees.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[1]
RAY_SETTINGS = (
    "RAY_ADDRESS",
    "RAY_AUTH_MODE",
    "RAY_AUTH_TOKEN",
    "RAY_AUTH_TOKEN_PATH",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",
    "RAY_USAGE_STATS_ENABLED",
)


# ---------------------------------------------------------------- the Ray under test (subprocess)


def _child(report: Path, ray_first: bool) -> None:
    if ray_first:  # a process that imported Ray before localroute: init_ray corrects it
        import ray  # noqa: F401
    import localroute.ray_runtime as rt
    from localroute.config import RayConfig

    with rt.ray_session(RayConfig(num_cpus=1)):
        import ray
        from ray._common.usage import usage_lib
        from ray._private.authentication.authentication_utils import is_token_auth_enabled

        @ray.remote(num_cpus=0.1)
        def worker_env() -> dict:
            return {k: os.environ.get(k) for k in RAY_SETTINGS}

        node = ray._private.worker._global_node
        token_path = os.environ.get("RAY_AUTH_TOKEN_PATH")
        token = Path(token_path).read_text() if token_path else None
        # the runtime-env agent: every node runs one (the dashboard agent's fixed port is taken
        # when another Ray runs on the machine, as the test session's does)
        agent = f"http://127.0.0.1:{node.runtime_env_agent_port}"
        info = {
            "pid": os.getpid(),
            "gcs_address": node.gcs_address,
            "agent": agent,
            "session_dir": node.get_session_dir_path(),
            "token_path": token_path,
            "token_auth": is_token_auth_enabled(),
            "usage_stats": usage_lib.usage_stats_enabled(),
            # a task on a worker: the cluster is up and its workers run with the same settings
            "worker_env": ray.get(worker_env.remote(), timeout=60),
            "with_token": _http_status(f"{agent}{_AGENT_PATH}", token),
        }
        report.write_text(json.dumps(info))
        print("READY", flush=True)
        sys.stdin.readline()  # hold the instance until the test has looked


_AGENT_PATH = "/get_runtime_envs_info"  # an agent route (POST; not a health check)


def _http_status(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=b"", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _gcs_call(address: str) -> None:
    """One GCS request from a process with the token its environment gives (exits 0 if served)."""
    from ray._raylet import GcsClient

    GcsClient(address=address).internal_kv_get(b"localroute-probe", b"test", timeout=10)


# ---------------------------------------------------------------- looking at it from outside


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(proc.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def _listening(pids: set[int]) -> list[tuple[str, int, int, str]]:
    """(address, port, pid, process name) of every TCP socket in LISTEN that `pids` hold."""
    inodes: dict[str, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        inodes[link[8:-1]] = pid
    found = []
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hex_ip, hex_port = local.split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc stores each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4))
            pid = inodes[inode]
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            found.append((str(ipaddress.ip_address(raw)), int(hex_port, 16), pid, name))
    return found


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _env_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _wait_gone(pids: set[int], timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while (left := _alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.parametrize("order", ["localroute-first", "ray-first"])
def test_local_ray_is_loopback_only_authenticated_and_quiet(tmp_path, order):
    env = {k: v for k, v in os.environ.items() if k not in RAY_SETTINGS}
    report = tmp_path / "ray.json"
    child = subprocess.Popen(
        [sys.executable, __file__, "child", str(report), order],
        cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    pids: set[int] = set()
    try:
        line = child.stdout.readline()  # READY once the instance runs a task (pytest times out)
        if line.strip() != "READY":
            child.kill()
            raise AssertionError(f"the Ray subprocess did not start: {line}{child.stderr.read()}")
        info = json.loads(report.read_text())
        pids = _descendants(child.pid)

        # Loopback only: every listening socket of every Ray process.
        sockets = _listening(pids)
        names = {name for *_, name in sockets}
        assert {"gcs_server", "raylet"} <= names, sockets  # the check saw the real servers
        exposed = [s for s in sockets if not _is_loopback(s[0])]
        assert not exposed, f"Ray listens beyond loopback: {exposed}"

        # Token authentication: on in the driver, the workers and the servers.
        assert info["token_auth"] is True
        assert info["worker_env"]["RAY_AUTH_MODE"] == "token"
        assert info["worker_env"]["RAY_AUTH_TOKEN"] is None  # the token itself is not in the env
        url = f"{info['agent']}{_AGENT_PATH}"
        assert _http_status(url, None) == 401
        assert _http_status(url, "not-the-token") == 403
        assert info["with_token"] not in (401, 403)
        call = f"from tests.test_ray_security import _gcs_call; _gcs_call({info['gcs_address']!r})"
        probe = [sys.executable, "-c", call]
        right = Path(info["token_path"]).read_text()
        for token, refused in (("not-the-token", True), (right, False)):
            probe_env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
            proc = subprocess.run(
                probe, cwd=REPO, env=probe_env, capture_output=True, text=True, timeout=60
            )
            assert (proc.returncode != 0) == refused, proc.stderr[-2000:]
            if refused:
                assert "auth" in proc.stderr.lower() or "unauthenticated" in proc.stderr.lower()

        # The token: a private file, in no log.
        token_path = Path(info["token_path"])
        assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(token_path.parent.stat().st_mode) == 0o700
        token = token_path.read_text()
        assert len(token) >= 32
        for log in Path(info["session_dir"], "logs").rglob("*"):
            if log.is_file():
                assert token not in log.read_text(errors="replace"), log

        # Usage stats off, in the driver and in the servers' environment.
        assert info["usage_stats"] is False
        gcs = next(pid for *_, pid, name in sockets if name == "gcs_server")
        assert _env_of(gcs).get("RAY_USAGE_STATS_ENABLED") == "0"
        assert info["worker_env"]["RAY_USAGE_STATS_ENABLED"] == "0"

        # Leaving the session ends every Ray process and removes the token.
        child.stdin.write("stop\n")
        child.stdin.flush()
        assert child.wait(timeout=60) == 0, child.stderr.read()
        assert not _wait_gone(pids - {child.pid}, 30), "Ray processes outlived the session"
        assert not token_path.parent.exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        _kill(_alive(pids))


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    _child(Path(sys.argv[2]), ray_first=sys.argv[3] == "ray-first")
