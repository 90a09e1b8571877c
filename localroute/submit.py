"""Run a localroute job on a Ray cluster through Ray's job server (the Jobs API on port 8265).

`localroute submit KIND --address http://HEAD:8265 --config FILE [--wait]` validates the config
here, then submits `python -m localroute.submit run KIND` with a runtime_env of:

- working_dir: the project (the folder holding pyproject.toml), minus `.venv*`, `.git`, `runs/`,
  caches, build outputs and any file over `submit.max_file_mb`; Ray also honours `.gitignore`;
- pip: the requirements of the project extras named in `submit.pip_extras` (e.g. [gpu]) plus
  `submit.pip`, installed by Ray into a per-job virtualenv on top of the cluster's packages
  (none by default: the cluster image carries the project's dependencies, see cluster/);
- env_vars: `submit.env_vars`, plus the config text, so the job runs exactly what was checked
  here even when FILE lives outside the project.

On the cluster the job writes the config to a temporary file with `ray.address: auto` (a
submitted job joins the cluster it was submitted to, whatever the file says) and runs the
ordinary command, e.g. `localroute profile --config that-file`. Relative paths in the config
resolve inside the job's copy of the project on the head node: outputs belong on storage every
node sees (an absolute shared path, or s3://, gs://); submitting names the relative ones.
The RayJobs in cluster/kuberay run the same entry point with a config file from the image:
`python -m localroute.submit run KIND --config FILE`.

With --wait the job's logs stream to stdout and the exit code follows its final status:
SUCCEEDED 0; FAILED the driver's exit code (1 when unknown); STOPPED 3.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from localroute.errors import ConfigError, LocalrouteError

# Job kinds: what `localroute submit KIND` runs on the cluster (the CLI words before the config).
JOB_KINDS: dict[str, tuple[str, ...]] = {
    "profile": ("profile",),
    "train": ("train",),
    "evaluate": ("evaluate",),
    "data": ("data", "build"),  # takes --out/--source-dir/--sources from the config's data:
}
CONFIG_ENV = "LOCALROUTE_SUBMITTED_CONFIG"
CONFIG_NAME_ENV = "LOCALROUTE_SUBMITTED_CONFIG_NAME"
ADDRESS_ENVS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
DEFAULT_EXCLUDES = [
    ".venv*/",
    ".git/",
    "runs/",
    "**/__pycache__/",
    "*.pyc",
    ".pytest_cache/",
    ".ruff_cache/",
    "*.egg-info/",
    "build/",
    "dist/",
]
EXIT_STOPPED = 3


class SubmitError(LocalrouteError):
    """The job server cannot be reached or refused the job."""


@dataclass(frozen=True)
class SubmitConfig:
    """The `submit:` section of a config."""

    # The job server, http://HEAD:8265; --address wins, then this, then $RAY_API_SERVER_ADDRESS
    # or $RAY_ADDRESS.
    address: str | None = None
    working_dir: str = "."  # the project folder to upload (holds pyproject.toml)
    excludes: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDES))
    max_file_mb: float = 50.0  # files larger than this stay behind (listed when submitting)
    pip_extras: list[str] = field(default_factory=list)  # project extras to pip-install, e.g. [gpu]
    pip: list[str] = field(default_factory=list)  # further requirements
    env_vars: dict[str, str] = field(default_factory=dict)
    python: str = "python"  # the interpreter on the cluster that has Ray and the project's deps
    entrypoint_num_cpus: float = 0.0  # CPUs reserved for the job's driver process
    entrypoint_resources: dict[str, float] = field(default_factory=dict)

    def check(self, where: str) -> None:
        if self.address is not None and not self.address.startswith(("http://", "https://")):
            raise ConfigError(
                f"{where}.address must be the job server's URL (http://HEAD:8265), "
                f"got {self.address!r}"
            )
        if self.max_file_mb <= 0:
            raise ConfigError(f"{where}.max_file_mb must be > 0, got {self.max_file_mb}")
        if self.entrypoint_num_cpus < 0:
            raise ConfigError(
                f"{where}.entrypoint_num_cpus must be >= 0, got {self.entrypoint_num_cpus}"
            )
        for key in self.env_vars:
            if key in (CONFIG_ENV, CONFIG_NAME_ENV):
                raise ConfigError(f"{where}.env_vars: {key} is set by localroute submit")


# ---------------------------------------------------------------- building the submission


def project_root(working_dir: str | Path) -> Path:
    root = Path(working_dir).expanduser().resolve()
    if not (root / "pyproject.toml").is_file():
        raise ConfigError(
            f"submit.working_dir: {root} has no pyproject.toml; run from the project root or set "
            "submit.working_dir"
        )
    return root


def _excluded(rel: str, is_dir: bool, patterns: list[str]) -> bool:
    from fnmatch import fnmatch

    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        pat = pattern.rstrip("/")
        if dir_only and not is_dir:
            continue
        anchored = pat.startswith("/")
        pat = pat.lstrip("/")
        if pat.startswith("**/"):
            pat = pat[3:]
        elif anchored or "/" in pat:
            if fnmatch(rel, pat):
                return True
            continue
        if fnmatch(name, pat):
            return True
    return False


def upload_excludes(root: Path, cfg: SubmitConfig) -> tuple[list[str], list[tuple[str, int]]]:
    """Exclude patterns for the upload, and the (path, bytes) of files left out for their size."""
    limit = cfg.max_file_mb * 1024 * 1024
    large = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [
            d for d in dirnames if not _excluded(rel_dir + d, True, cfg.excludes)
        ]  # prune
        for name in filenames:
            rel = rel_dir + name
            if _excluded(rel, False, cfg.excludes):
                continue
            try:
                size = (Path(dirpath) / name).stat().st_size
            except OSError:
                continue
            if size > limit:
                large.append((rel, size))
    return [*cfg.excludes, *(f"/{rel}" for rel, _ in sorted(large))], sorted(large)


def pip_requirements(root: Path, cfg: SubmitConfig) -> list[str]:
    """The requirements of the extras in cfg.pip_extras (from pyproject.toml), then cfg.pip."""
    if not cfg.pip_extras:
        return list(cfg.pip)
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    requirements = []
    for extra in cfg.pip_extras:
        if extra not in extras:
            raise ConfigError(
                f"submit.pip_extras: {extra!r} is not an extra of {root / 'pyproject.toml'}; "
                f"known: {sorted(extras)}"
            )
        requirements += [r for r in extras[extra] if r not in requirements]
    return requirements + [r for r in cfg.pip if r not in requirements]


def build_runtime_env(
    root: Path, cfg: SubmitConfig, config_text: str, config_name: str, excludes: list[str]
) -> dict:
    env = {
        "working_dir": str(root),
        "excludes": excludes,
        "env_vars": {**cfg.env_vars, CONFIG_ENV: config_text, CONFIG_NAME_ENV: config_name},
    }
    requirements = pip_requirements(root, cfg)
    if requirements:
        env["pip"] = {"packages": requirements}
    return env


def entrypoint(kind: str, job_args: list[str], python: str = "python") -> str:
    return shlex.join([python, "-m", "localroute.submit", "run", kind, *job_args])


def resolve_address(cli_address: str | None, cfg: SubmitConfig) -> str:
    address = cli_address or cfg.address
    if not address:
        address = next((os.environ[k] for k in ADDRESS_ENVS if os.environ.get(k)), None)
    if not address:
        raise ConfigError(
            "no job server address: pass --address http://HEAD:8265, set submit.address, or "
            "set RAY_API_SERVER_ADDRESS"
        )
    if not address.startswith(("http://", "https://")):
        raise ConfigError(
            f"--address must be the job server's URL (http://HEAD:8265), got {address!r}"
        )
    return address.rstrip("/")


# ---------------------------------------------------------------- submitting and following


def submit(
    kind: str,
    config_path: str | Path,
    address: str | None = None,
    wait: bool = False,
    job_args: list[str] | None = None,
    submission_id: str | None = None,
    out: Callable[[str], None] | None = None,
) -> int:
    """Submit one job; with wait, stream its logs and return the exit code its status maps to."""
    from localroute.config import load_config

    if kind not in JOB_KINDS:
        raise ConfigError(f"unknown job kind {kind!r}; known: {', '.join(JOB_KINDS)}")
    out = out or (lambda s: print(s, flush=True))
    config_path = Path(config_path)
    cfg = load_config(config_path)  # the whole file is checked here, before anything is sent
    scfg: SubmitConfig = cfg.submit
    address = resolve_address(address, scfg)
    root = project_root(scfg.working_dir)
    excludes, large = upload_excludes(root, scfg)
    for rel, size in large:
        out(f"note: not uploading {rel} ({size / 2**20:.0f} MiB > submit.max_file_mb)")
    for field_name, value in _relative_outputs(cfg, job_args or []):
        out(
            f"note: {field_name} {value!r} is relative: on the cluster it resolves inside the "
            "job's copy of the project on the head node; use storage every node sees"
        )
    runtime_env = build_runtime_env(
        root, scfg, config_path.read_text(encoding="utf-8"), config_path.name, excludes
    )
    submission_id = submission_id or (
        f"localroute-{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    )
    client = _client(address)
    try:
        job_id = client.submit_job(
            entrypoint=entrypoint(kind, job_args or [], scfg.python),
            submission_id=submission_id,
            runtime_env=runtime_env,
            metadata={"localroute_kind": kind, "config": str(config_path)},
            entrypoint_num_cpus=scfg.entrypoint_num_cpus or None,
            entrypoint_resources=scfg.entrypoint_resources or None,
        )
    except Exception as exc:  # the SDK raises RuntimeError/ConnectionError/HTTP errors
        raise SubmitError(f"{address}: job submission failed ({_one_line(exc)})") from exc
    out(f"submitted {kind} job {job_id} to {address}")
    if not wait:
        out(f"follow it: ray job logs --follow --address {address} {job_id}")
        out(f"status:    ray job status --address {address} {job_id}")
        return 0
    try:
        status, info = follow(client, job_id, out)
    except KeyboardInterrupt:
        out(
            f"stopped following {job_id}; it keeps running "
            f"(stop it: ray job stop --address {address} {job_id})"
        )
        return 130
    code = exit_code(
        status, getattr(info, "driver_exit_code", None), getattr(info, "message", None)
    )
    first = (getattr(info, "message", None) or "").strip().splitlines()
    message = f" ({first[0].rstrip(',')})" if first else ""
    out(f"job {job_id} {status}{message}; exit code {code}")
    return code


def _relative_outputs(cfg, job_args: list[str] = ()) -> list[tuple[str, str]]:
    """(field, path) of the output folders (config fields, --out in the job's arguments) that
    are relative local paths."""
    outputs = [("data.out", cfg.data.out)]
    for key, section in sorted(cfg.sections.items()):
        value = getattr(section, "out", None)
        if isinstance(value, str):
            outputs.append((f"{key}.out", value))
    for i, arg in enumerate(job_args):
        if arg.startswith("--out="):
            outputs.append(("--out", arg.split("=", 1)[1]))
        elif arg == "--out" and i + 1 < len(job_args):
            outputs.append(("--out", job_args[i + 1]))
    return [(k, v) for k, v in outputs if "://" not in v and not Path(v).is_absolute()]


def _quiet_ray_client_logs() -> None:
    """Keep the SDK's per-upload INFO lines and default-exclude notices out of the job's output."""
    import logging

    for name in (
        "ray._private.runtime_env",
        "ray.dashboard.modules.dashboard_sdk",  # these two set INFO on themselves
        "ray.dashboard.modules.job.sdk",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray._private.runtime_env.working_dir").setLevel(logging.ERROR)


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    _quiet_ray_client_logs()  # after the import: the SDK modules set their level when imported
    try:
        return JobSubmissionClient(address)
    except Exception as exc:
        raise SubmitError(
            f"cannot reach the Ray job server at {address} ({_one_line(exc)})"
        ) from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def follow(client, job_id: str, out: Callable[[str], None], poll_s: float = 0.5):
    """Stream the job's logs to stdout until it ends; returns (final status, job info)."""
    import asyncio

    printed = 0

    async def tail() -> None:
        nonlocal printed
        async for chunk in client.tail_job_logs(job_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()
            printed += len(chunk)

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the stream broke: poll instead, then print what was missed
        out(f"note: log stream ended early ({_one_line(exc)}); polling the job status")
    wait_for_job(client, job_id, poll_s=poll_s)
    info = client.get_job_info(job_id)
    logs = client.get_job_logs(job_id)
    if len(logs) > printed:
        sys.stdout.write(logs[printed:])
        sys.stdout.flush()
    return info.status, info


def wait_for_job(client, job_id: str, timeout_s: float | None = None, poll_s: float = 1.0):
    """Poll until the job ends; returns its final JobStatus (TimeoutError after timeout_s)."""
    from ray.job_submission import JobStatus

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while (status := client.get_job_status(job_id)) not in (
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.STOPPED,
    ):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {status} after {timeout_s} s")
        time.sleep(poll_s)
    return status


def exit_code(status, driver_exit_code: int | None = None, message: str | None = None) -> int:
    """0 for SUCCEEDED, 3 for STOPPED; for FAILED the driver's exit code (from the job info, else
    from its message, "... failed with exit code N"), else 1."""
    import re

    name = getattr(status, "value", str(status))
    if name == "SUCCEEDED":
        return 0
    if name == "STOPPED":
        return EXIT_STOPPED
    if driver_exit_code:
        return driver_exit_code
    found = re.search(r"exit code (\d+)", message or "")
    return int(found.group(1)) if found and int(found.group(1)) else 1


# ---------------------------------------------------------------- on the cluster


def job_argv(kind: str, config_file: Path, job_args: list[str]) -> list[str]:
    """The `localroute` command line the job runs for KIND with the materialised config."""
    if kind == "data":
        from localroute.config import load_config

        data = load_config(config_file).data
        argv = [*JOB_KINDS[kind], "--out", data.out]
        if data.source_dir:
            argv += ["--source-dir", data.source_dir]
        if data.sources:
            argv += ["--sources", ",".join(data.sources)]
        return argv + job_args
    return [*JOB_KINDS[kind], "--config", str(config_file), *job_args]


def materialise_config(text: str, name: str, directory: Path) -> Path:
    """Write the submitted config with `ray.address: auto`, so the job joins this cluster."""
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: top level must be a mapping")
    ray_section = raw.get("ray") or {}
    if not isinstance(ray_section, dict):
        raise ConfigError(f"{name}: ray must be a mapping")
    raw["ray"] = {**ray_section, "address": "auto"}
    path = directory / Path(name).name
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def run_submitted(kind: str, job_args: list[str]) -> int:
    """Entry point of a submitted job (`python -m localroute.submit run KIND [ARGS]`)."""
    import tempfile

    from localroute.cli import main as cli_main

    text, name = os.environ.get(CONFIG_ENV), os.environ.get(CONFIG_NAME_ENV, "config.yaml")
    if text is None and job_args[:1] == ["--config"] and len(job_args) > 1:
        # A RayJob manifest: the config is a file in the image (cluster/kuberay/rayjob-*.yaml).
        source, job_args = Path(job_args[1]), job_args[2:]
        if not source.is_file():
            print(f"error: {source}: config file not found", file=sys.stderr)
            return 2
        text, name = source.read_text(encoding="utf-8"), source.name
    if text is None:
        print(
            f"error: no config: {CONFIG_ENV} is unset and no --config FILE was given "
            "(jobs are sent by `localroute submit`)",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="localroute-job-") as tmp:
        try:
            path = materialise_config(text, name, Path(tmp))
            argv = job_argv(kind, path, job_args)
        except LocalrouteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"localroute job: {shlex.join(['localroute', *argv])} (cwd {Path.cwd()})", flush=True)
        return cli_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] != "run" or argv[1] not in JOB_KINDS:
        print(
            f"usage: python -m localroute.submit run {{{','.join(JOB_KINDS)}}} "
            "[--config FILE] [ARGS...]\n(the entry point of jobs sent by `localroute submit` "
            "and of the RayJobs in cluster/kuberay)",
            file=sys.stderr,
        )
        return 2
    return run_submitted(argv[1], argv[2:])


if __name__ == "__main__":
    sys.exit(main())
