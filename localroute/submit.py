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

A job server that answers but is still starting (its job agent not up) is waited for, up to
`submit.agent_timeout_s`; one that refuses connections is an error at once, unless
`submit.ready_timeout_s` allows a wait. A cluster with token authentication gets its token from
RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) where this runs.

With --wait the job's logs stream to stdout and the exit code follows its final status:
SUCCEEDED 0; FAILED the driver's exit code (1 when unknown); STOPPED 3.

The pieces live in localroute/jobs/: settings (the `submit:` section), package (what is sent),
server (the job server), run (what runs on the cluster).
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from localroute.errors import ConfigError
from localroute.jobs.package import (
    build_runtime_env,
    entrypoint,
    pip_requirements,
    project_root,
    relative_outputs,
    resolve_address,
    upload_excludes,
)
from localroute.jobs.run import job_argv, materialise_config, run_submitted
from localroute.jobs.server import (
    connect,
    exit_code,
    follow,
    one_line,
    submit_job,
    wait_for_job,
)
from localroute.jobs.settings import (
    ADDRESS_ENVS,
    CONFIG_ENV,
    CONFIG_NAME_ENV,
    DEFAULT_EXCLUDES,
    EXIT_STOPPED,
    JOB_KINDS,
    SubmitConfig,
    SubmitError,
)

_relative_outputs = relative_outputs  # the name tests and older callers use

__all__ = [
    "ADDRESS_ENVS",
    "CONFIG_ENV",
    "CONFIG_NAME_ENV",
    "DEFAULT_EXCLUDES",
    "EXIT_STOPPED",
    "JOB_KINDS",
    "SubmitConfig",
    "SubmitError",
    "build_runtime_env",
    "connect",
    "entrypoint",
    "exit_code",
    "follow",
    "job_argv",
    "main",
    "materialise_config",
    "pip_requirements",
    "project_root",
    "relative_outputs",
    "resolve_address",
    "run_submitted",
    "submit",
    "submit_job",
    "upload_excludes",
    "wait_for_job",
]


def checked_config(config_path: Path, load_config: Callable | None = None):
    """(config, its submit section), checked before anything is sent. `load_config` is the
    application's whole-file loader (every job section checked here, e.g. cli.config's); without
    one, the sections this library owns (ray, data, submit) are checked and the other sections
    are read only for their `out` paths."""
    from localroute.config import DataConfig, RayConfig, load_section, read_yaml

    if load_config is not None:
        cfg = load_config(config_path)
        scfg = cfg.sections.get("submit") or load_section(config_path, "submit", SubmitConfig)
        return cfg, scfg
    scfg = load_section(config_path, "submit", SubmitConfig)
    load_section(config_path, "ray", RayConfig)
    data = load_section(config_path, "data", DataConfig)
    raw = read_yaml(config_path)
    sections = {
        key: SimpleNamespace(out=value.get("out"))
        for key, value in raw.items()
        if key not in ("seed", "ray", "data", "submit") and isinstance(value, dict)
    }
    return SimpleNamespace(data=data, sections=sections), scfg


def submit(
    kind: str,
    config_path: str | Path,
    address: str | None = None,
    wait: bool = False,
    job_args: list[str] | None = None,
    submission_id: str | None = None,
    out: Callable[[str], None] | None = None,
    load_config: Callable | None = None,
) -> int:
    """Submit one job; with wait, stream its logs and return the exit code its status maps to.
    `load_config(path) -> Config`: the application's loader, so every section is checked here."""
    if kind not in JOB_KINDS:
        raise ConfigError(f"unknown job kind {kind!r}; known: {', '.join(JOB_KINDS)}")
    out = out or (lambda s: print(s, flush=True))
    config_path = Path(config_path)
    cfg, scfg = checked_config(config_path, load_config)
    address = resolve_address(address, scfg)
    root = project_root(scfg.working_dir)
    excludes, large = upload_excludes(root, scfg)
    for rel, size in large:
        out(f"note: not uploading {rel} ({size / 2**20:.0f} MiB > submit.max_file_mb)")
    for field_name, value in relative_outputs(cfg, job_args or []):
        out(
            f"note: {field_name} {value!r} is relative: on the cluster it resolves inside the "
            "job's copy of the project on the head node; use storage every node sees"
        )
    # The config's path inside the project (where it is): the job writes it in the same place
    # of its copy, so relative input paths resolve as they did here.
    resolved = config_path.resolve()
    name = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else resolved.name
    runtime_env = build_runtime_env(
        root, scfg, config_path.read_text(encoding="utf-8"), name, excludes
    )
    submission_id = submission_id or (
        f"localroute-{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    )
    client = connect(address, scfg.ready_timeout_s)
    try:
        job_id = submit_job(
            client,
            scfg.agent_timeout_s,
            entrypoint=entrypoint(kind, job_args or [], scfg.python),
            submission_id=submission_id,
            runtime_env=runtime_env,
            metadata={"localroute_kind": kind, "config": str(config_path)},
            entrypoint_num_cpus=scfg.entrypoint_num_cpus or None,
            entrypoint_resources=scfg.entrypoint_resources or None,
        )
    except SubmitError:
        raise
    except Exception as exc:  # the SDK raises RuntimeError/ConnectionError/HTTP errors
        raise SubmitError(f"{address}: job submission failed ({one_line(exc)})") from exc
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
