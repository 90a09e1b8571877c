"""`localroute submit`: the submission pieces, then real jobs on a real Ray head on 127.0.0.1.

The head is started with `ray start --head --block` in its own session, with its own ports and
temp dir and token authentication on, and ended in teardown by its process group (never `ray
stop`, which would end every Ray on the machine), plus any process that carries its marker in its
environment (job drivers run in sessions of their own). The fixture waits for readiness (the job
server answering, its GCS behind it, the node's job agent up), each wait bounded, never a fixed
sleep; `localroute submit` itself waits for a job agent still starting.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from cli.config import load_config  # the application's loader: every job section
from localroute.errors import ConfigError
from localroute.submit import (
    CONFIG_ENV,
    CONFIG_NAME_ENV,
    SubmitConfig,
    SubmitError,
    build_runtime_env,
    connect,
    entrypoint,
    exit_code,
    job_argv,
    materialise_config,
    pip_requirements,
    resolve_address,
    submit_job,
    upload_excludes,
)

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# ------------------------------------------------------------------------------- the pieces


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    for rel in [
        "pyproject.toml",
        "localroute/__init__.py",
        ".venv/bin/python",
        ".venv-vllm/lib/x.py",
        ".git/HEAD",
        "runs/demo/out.parquet",
        "localroute/__pycache__/x.pyc",
        "configs/a.yaml",
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "p"\n[project.optional-dependencies]\n'
        'gpu = ["vllm>=0.10"]\nenergy = ["zeus>=0.16", "vllm>=0.10"]\n'
    )
    (root / "big.bin").write_bytes(b"0" * 3 * 2**20)
    return root


def test_upload_leaves_out_venvs_git_runs_caches_and_large_files(tmp_path):
    root = _project(tmp_path)
    excludes, large = upload_excludes(root, SubmitConfig(max_file_mb=2))
    assert large == [("big.bin", 3 * 2**20)]
    assert "/big.bin" in excludes
    for pattern in (".venv*/", ".git/", "runs/", "**/__pycache__/"):
        assert pattern in excludes
    # What Ray itself packages with these excludes (its own traversal and matcher).
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    kept = set()
    _dir_travel(
        root,
        [_get_excludes(root, excludes)],
        lambda p: kept.add(p.relative_to(root).as_posix()) if p.is_file() else None,
        include_gitignore=True,
    )
    assert kept == {"pyproject.toml", "localroute/__init__.py", "configs/a.yaml"}


def test_pip_extras_come_from_pyproject(tmp_path):
    root = _project(tmp_path)
    assert pip_requirements(root, SubmitConfig()) == []
    cfg = SubmitConfig(pip_extras=["gpu", "energy"], pip=["rich"])
    assert pip_requirements(root, cfg) == ["vllm>=0.10", "zeus>=0.16", "rich"]
    with pytest.raises(ConfigError, match=r"submit.pip_extras: 'tpu' is not an extra"):
        pip_requirements(root, SubmitConfig(pip_extras=["tpu"]))
    env = build_runtime_env(root, cfg, "seed: 1\n", "c.yaml", ["x/"])
    assert env["working_dir"] == str(root) and env["excludes"] == ["x/"]
    assert env["pip"] == {"packages": ["vllm>=0.10", "zeus>=0.16", "rich"]}
    assert env["env_vars"] == {CONFIG_ENV: "seed: 1\n", CONFIG_NAME_ENV: "c.yaml"}
    assert "pip" not in build_runtime_env(root, SubmitConfig(), "", "c.yaml", [])


def test_the_projects_own_extras_resolve():
    assert pip_requirements(REPO, SubmitConfig(pip_extras=["gpu"]))[0].startswith("vllm")


def test_exit_code_follows_the_final_status():
    from ray.job_submission import JobStatus

    assert exit_code(JobStatus.SUCCEEDED) == 0
    assert exit_code(JobStatus.FAILED) == 1
    assert exit_code(JobStatus.FAILED, 2) == 2
    assert exit_code(JobStatus.STOPPED) == 3
    message = "Job entrypoint command failed with exit code 2, last available logs"
    assert exit_code(JobStatus.FAILED, None, message) == 2


def test_a_submitted_config_joins_the_cluster(tmp_path):
    text = "seed: 7\nray:\n  address: null\n  num_cpus: 2\ndata:\n  out: /x\n"
    path = materialise_config(text, "dir/my.yaml", tmp_path)
    assert path == tmp_path / "my.yaml"
    cfg = load_config(path)
    assert cfg.ray.address == "auto" and cfg.ray.num_cpus == 2 and cfg.seed == 7
    assert job_argv("data", path, []) == ["data", "build", "--out", "/x"]
    assert job_argv("profile", path, ["--x", "1"]) == ["profile", "--config", str(path), "--x", "1"]
    assert materialise_config("", "e.yaml", tmp_path).read_text() == "ray:\n  address: auto\n"
    assert entrypoint("train", ["--a b"]) == "python -m localroute.submit run train '--a b'"


def test_the_job_writes_its_config_where_relative_inputs_resolve_as_here(tmp_path, monkeypatch):
    """An input path resolves against its config file's folder: the job writes the config in
    the same folder of its copy of the project (or beside the RayJob's file)."""
    from localroute.config import DataConfig, load_section
    from localroute.jobs.run import config_home

    copy = tmp_path / "copy"  # the job's working directory: its copy of the project
    (copy / "configs").mkdir(parents=True)
    monkeypatch.chdir(copy)
    assert config_home("configs/c.yaml") == copy / "configs"
    assert config_home("c.yaml") == copy
    assert config_home("../outside.yaml") == copy and config_home("/abs/c.yaml") == copy
    assert config_home("absent/c.yaml") == copy
    assert config_home("c.yaml", source=copy / "configs" / "c.yaml") == copy / "configs"
    text = "data:\n  source_dir: ../raw\n"
    path = materialise_config(text, "configs/c.yaml", config_home("configs/c.yaml"), ".job.yaml")
    assert path == copy / "configs" / ".job.yaml"
    assert load_section(path, "data", DataConfig).source_dir == str(copy / "configs" / "../raw")


def test_relative_output_paths_are_named(tmp_path):
    from localroute.submit import _relative_outputs

    path = tmp_path / "c.yaml"
    path.write_text("data:\n  out: runs/data\nprofile:\n  out: s3://bucket/p\n")
    assert _relative_outputs(load_config(path)) == [("data.out", "runs/data")]
    path.write_text(f"data:\n  out: {tmp_path}\nprofile:\n  out: runs/p\n")
    assert _relative_outputs(load_config(path)) == [("profile.out", "runs/p")]
    job_args = ["--router", "bert", "--out", "runs/r", "--out=/abs"]
    assert _relative_outputs(load_config(path), job_args) == [
        ("profile.out", "runs/p"),
        ("--out", "runs/r"),
    ]


def test_address_comes_from_flag_then_config_then_environment(monkeypatch):
    for key in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="no job server address"):
        resolve_address(None, SubmitConfig())
    monkeypatch.setenv("RAY_ADDRESS", "http://env:8265")
    assert resolve_address(None, SubmitConfig()) == "http://env:8265"
    assert resolve_address(None, SubmitConfig(address="http://cfg:8265/")) == "http://cfg:8265"
    assert resolve_address("http://cli:8265", SubmitConfig(address="http://c")) == "http://cli:8265"
    with pytest.raises(ConfigError, match="job server's URL"):
        resolve_address("10.0.0.1:6379", SubmitConfig())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("submit:\n  address: 10.0.0.1:8265\n", r"submit.address must be the job server's URL"),
        ("submit:\n  max_file_mb: 0\n", r"submit.max_file_mb must be > 0"),
        ("submit:\n  env_vars: {LOCALROUTE_SUBMITTED_CONFIG: x}\n", r"set by localroute submit"),
        ("submit:\n  pip_extra: [gpu]\n", r"submit: unknown key\(s\) \['pip_extra'\]"),
    ],
)
def test_submit_section_errors_name_the_field(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def _cli(*args: str, timeout: float = 200, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "localroute"), *args],  # the installed command
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_bad_config_or_unreachable_server_is_one_error_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  sources: [nope]\n")
    proc = _cli("submit", "data", "--address", "http://127.0.0.1:9", "--config", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: data.sources")
    good = tmp_path / "good.yaml"
    good.write_text("data:\n  out: /tmp/x\n")
    proc = _cli("submit", "data", "--address", "http://127.0.0.1:9", "--config", str(good))
    assert proc.returncode == 2
    assert "error: cannot reach the Ray job server at http://127.0.0.1:9" in proc.stderr


def test_the_library_does_not_import_the_cli():
    """The CLI is the top floor: submitting and running a job go through the `localroute`
    command, never an import of the CLI's modules."""
    code = (
        "import sys, localroute.submit, localroute.jobs.run, localroute.jobs.server; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cli' "
        "or m.startswith(('localroute.cli', 'localroute.commands'))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr
    for path in [REPO / "localroute" / "submit.py", *(REPO / "localroute" / "jobs").glob("*.py")]:
        text = path.read_text()
        assert "localroute.cli" not in text and "cli.main" not in text, path


def test_every_section_is_checked_before_anything_is_sent(tmp_path):
    """With the application's loader (as the CLI passes it) a bad job section stops the
    submission here; without it the library still checks the sections it owns."""
    from localroute.submit import submit

    path = tmp_path / "c.yaml"
    path.write_text("profile:\n  max_tokens: 0\n")
    with pytest.raises(ConfigError, match=r"profile: max_turns and max_tokens must be >= 1"):
        submit("profile", path, address="http://127.0.0.1:9", load_config=load_config)
    path.write_text("submit:\n  max_file_mb: 0\n")
    with pytest.raises(ConfigError, match=r"submit.max_file_mb must be > 0"):
        submit("profile", path, address="http://127.0.0.1:9")


class _StartingServer:
    """A job server whose agent comes up after `busy` refusals."""

    def __init__(self, busy: int, error: str = "No available agent to submit job, please try"):
        self.busy, self.error, self.calls = busy, error, 0

    def submit_job(self, **job):
        self.calls += 1
        if self.calls <= self.busy:
            raise RuntimeError(f"Request failed with status code 500: {self.error}")
        return job["submission_id"]


def test_submission_waits_for_a_starting_job_agent_within_a_deadline():
    server = _StartingServer(busy=2)
    assert submit_job(server, 30, poll_s=0.01, submission_id="j") == "j" and server.calls == 3
    late = _StartingServer(busy=10**6)
    t0 = time.monotonic()
    with pytest.raises(SubmitError, match=r"agent was not up within 0.2 s"):
        submit_job(late, 0.2, poll_s=0.05, submission_id="j")
    assert 0.2 <= time.monotonic() - t0 < 5 and late.calls >= 2
    other = _StartingServer(busy=1, error="Job with submission_id j already exists")
    with pytest.raises(RuntimeError, match="already exists"):  # not a starting server: at once
        submit_job(other, 30, poll_s=0.01, submission_id="j")
    assert other.calls == 1


def test_an_absent_job_server_is_waited_for_only_within_the_deadline():
    port = _free_port()
    t0 = time.monotonic()
    with pytest.raises(SubmitError, match=rf"cannot reach the Ray job server at .*:{port} within"):
        connect(f"http://127.0.0.1:{port}", ready_timeout_s=1.0, poll_s=0.1)
    assert 1.0 <= time.monotonic() - t0 < 20


# ------------------------------------------------------------------------ a real head on loopback


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_marked(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _stop_head(head: subprocess.Popen, marker: str) -> None:
    pgid = head.pid  # start_new_session: the head leads its own process group
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            head.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        try:  # the group may outlive its leader
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
    for pid in _processes_marked(marker):  # job drivers run in sessions of their own
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if head.poll() is None:
        head.kill()
        head.wait(timeout=5)


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head with the job server on 127.0.0.1, as a cluster node labelled `cpu`."""
    temp_dir = tempfile.mkdtemp(prefix="lr-head-", dir="/tmp")  # short: socket paths
    ports = {
        name: _free_port()
        for name in (
            "port",
            "dashboard-port",
            "ray-client-server-port",
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "runtime-env-agent-port",
            "metrics-export-port",
            "node-manager-port",
            "object-manager-port",
        )
    }
    marker = f"LOCALROUTE_TEST_HEAD={uuid.uuid4().hex}"
    token = secrets.token_hex(32)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",  # as a real cluster should: every client needs the token
        "RAY_AUTH_TOKEN": token,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # `python` is this venv's
        marker.split("=")[0]: marker.split("=")[1],
    }
    cmd = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        "--include-dashboard=true",
        "--num-cpus=2",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        "--labels=localroute.io/hardware=cpu",
        *(f"--{name}={port}" for name, port in ports.items()),
    ]
    log = open(Path(temp_dir) / "head.log", "w")  # noqa: SIM115 (closed in teardown)
    head = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"http://127.0.0.1:{ports['dashboard-port']}"
    agent = f"http://127.0.0.1:{ports['dashboard-agent-listen-port']}/api/local_raylet_healthz"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        _wait_ready(head, log.name, address, agent, headers, timeout_s=120)
        yield {
            "address": address,
            "gcs": f"127.0.0.1:{ports['port']}",
            "env": env,  # the head's: job drivers and clients holding the token
            "headers": headers,  # for clients in this process (its RAY_AUTH_MODE is disabled)
        }
    finally:
        _stop_head(head, marker.split("=")[1])
        log.close()
        import shutil

        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_ready(head, log: str, address: str, agent: str, headers: dict, timeout_s: float):
    """Until the job server answers (version and job list: its GCS is up) and the head's job
    agent serves; polls, fails at once if the head exits, and within `timeout_s` in any case."""
    deadline = time.monotonic() + timeout_s
    waiting = "the job server"
    while True:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited {head.returncode}: see {log}")
        try:
            if waiting == "the job server":
                connect(address, headers=headers)
                waiting = "the job agent"
            with urllib.request.urlopen(agent, timeout=2) as r:
                assert r.status == 200
            return
        except (SubmitError, OSError) as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{waiting} not ready in {timeout_s} s: see {log}") from exc
            time.sleep(min(0.25, left))


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def test_data_job_streams_logs_and_writes_the_tables(ray_head, tmp_path):
    out = tmp_path / "data"
    cfg = _config(
        tmp_path,
        f"ray:\n  address: null\ndata:\n  source_dir: shipped\n  out: {out}\n"
        "  sources: [routellm_gsm8k]\n",
    )
    proc = _cli(
        "submit", "data", "--address", ray_head["address"], "--config", str(cfg), "--wait",
        env=ray_head["env"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "localroute job: localroute data build --out" in proc.stdout  # the job's own log
    assert "SUCCEEDED" in proc.stdout.splitlines()[-1]
    from localroute.data.build import summary

    counts = summary(out)
    assert counts["queries"]["routellm_gsm8k"] > 0 and counts["outcomes"]["routellm_gsm8k"] > 0


def test_failed_job_exits_with_the_drivers_code(ray_head, tmp_path):
    cfg = _config(tmp_path, f"data:\n  source_dir: {tmp_path / 'absent'}\n  out: {tmp_path}/o\n")
    proc = _cli(
        "submit", "data", "--address", ray_head["address"], "--config", str(cfg), "--wait",
        env=ray_head["env"],
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output  # localroute's "error:" exit code, from the driver
    assert "source data directory not found" in proc.stdout, output
    assert " FAILED " in proc.stdout.splitlines()[-1], output


def test_no_wait_returns_at_once_with_the_job_id(ray_head, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    cfg = _config(
        tmp_path, f"data:\n  source_dir: shipped\n  out: {tmp_path}/d\n  sources: [gsm8k]\n"
    )
    proc = _cli(
        "submit", "data", "--address", ray_head["address"], "--config", str(cfg),
        "--submission-id", "lr-test-nowait", env=ray_head["env"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "submitted data job lr-test-nowait" in proc.stdout
    from localroute.submit import wait_for_job

    client = JobSubmissionClient(ray_head["address"], headers=ray_head["headers"])
    assert wait_for_job(client, "lr-test-nowait", timeout_s=150) == JobStatus.SUCCEEDED
    assert client.get_job_info("lr-test-nowait").metadata["localroute_kind"] == "data"


def test_a_client_without_the_token_is_refused(ray_head, tmp_path):
    cfg = _config(tmp_path, f"data:\n  source_dir: shipped\n  out: {tmp_path}/d\n")
    env = {k: v for k, v in ray_head["env"].items() if k != "RAY_AUTH_TOKEN"}
    for name, value in (("RAY_AUTH_MODE", "disabled"), ("RAY_AUTH_TOKEN", "not-the-token")):
        proc = _cli(
            "submit", "data", "--address", ray_head["address"], "--config", str(cfg),
            env={**env, name: value},
        )  # fmt: skip
        assert proc.returncode == 2, proc.stdout + proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: the Ray job server at {ray_head['address']} refused"), last
        assert "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN" in last
        assert "submitted" not in proc.stdout


def test_rayjob_entrypoint_runs_a_config_file_from_the_image(ray_head, tmp_path):
    """What the RayJobs in cluster/kuberay run: the installed project, a config file, no upload."""
    from localroute.submit import wait_for_job

    out = tmp_path / "data"
    cfg = _config(
        tmp_path,
        f"ray:\n  address: null\ndata:\n  source_dir: shipped\n  out: {out}\n"
        "  sources: [routellm_mmlu]\n",
    )
    from ray.job_submission import JobStatus

    client = connect(ray_head["address"], headers=ray_head["headers"])
    job = submit_job(
        client, entrypoint=f"cd {REPO} && python -m localroute.submit run data --config {cfg}"
    )
    assert wait_for_job(client, job, timeout_s=150) == JobStatus.SUCCEEDED, client.get_job_logs(job)
    from localroute.data.build import summary

    assert summary(out)["outcomes"]["routellm_mmlu"] > 0


def test_pools_are_placed_by_the_head_labels(ray_head):
    """A driver on the cluster: the cpu pool's selector matches the labelled head; GPU pools are
    named by unschedulable() instead of waiting."""
    script = """
import ray
from localroute.placement import HARDWARE_LABEL, Placement, ray_remote_args_for, unschedulable
ray.init(address="auto", logging_level="ERROR")
cpu = Placement(kind="cpu", num_cpus=0.5)
@ray.remote
def where():
    value = ray.get_runtime_context().get_node_labels().get(HARDWARE_LABEL)
    return value[0] if isinstance(value, list) else value
print("ran-on", ray.get(where.options(**ray_remote_args_for(cpu)).remote(), timeout=60))
problems = unschedulable({"cpu": cpu, "h100": Placement(kind="nvidia-h100")})
print("unschedulable", sorted(problems))
"""
    env = {**ray_head["env"], "RAY_ADDRESS": ray_head["gcs"]}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "ran-on cpu" in proc.stdout
    assert "unschedulable ['h100']" in proc.stdout


def test_profile_job_writes_outcome_rows(ray_head, tmp_path):
    """The issue's check: a small profile job through `localroute submit --wait`, then its rows."""
    out = tmp_path / "profile"
    cfg = {
        "seed": 1,
        "ray": {"address": None, "num_cpus": 4},  # the embedded default: the job joins instead
        "data": {"source_dir": "shipped", "out": str(tmp_path / "data"), "sources": ["gsm8k"]},
        "profile": {
            "out": str(out),
            "sources": ["gsm8k"],
            "limit": 2,
            "max_turns": 1,
            "max_tokens": 4,
            "pools": [
                {
                    "name": "cpu",
                    "engine": "transformers",
                    "model": "tiny",
                    "model_name": "tiny",
                    "engine_options": {"device": "cpu"},
                    "placement": {"kind": "cpu", "num_cpus": 0.5},
                    "batch_size": 2,
                    "tdp_w": 65.0,
                }
            ],
        },
    }
    path = _config(tmp_path, yaml.safe_dump(cfg))
    proc = _cli(
        "submit", "profile", "--address", ray_head["address"], "--config", str(path), "--wait",
        timeout=280, env=ray_head["env"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "== profile: 1 pool(s)" in proc.stdout  # the job's log, streamed
    from pipelines.profile import read_profile_outcomes

    rows = read_profile_outcomes(out).to_pylist()
    assert len(rows) == 2, rows
    assert {(r["model"], r["hardware"], r["provenance"]) for r in rows} == {
        ("tiny", "cpu", "measured")
    }
    assert all(r["error"] is None and r["latency_s"] > 0 for r in rows), rows
