"""What a submitted job runs on the cluster: write the config it carries (joining this cluster),
then run the ordinary `localroute` command for its kind, as its own process."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from localroute.errors import ConfigError, LocalrouteError
from localroute.jobs.settings import CONFIG_ENV, CONFIG_NAME_ENV, JOB_KINDS

COMMAND = "localroute"  # the project's console script (pyproject [project.scripts])


def job_argv(kind: str, config_file: Path, job_args: list[str]) -> list[str]:
    """The `localroute` command line the job runs for KIND with the materialised config."""
    if kind == "data":
        from localroute.config import DataConfig, load_section, read_yaml

        data = load_section(config_file, "data", DataConfig)  # checked, but the paths as written:
        source_dir = (read_yaml(config_file).get("data") or {}).get("source_dir")
        argv = [*JOB_KINDS[kind], "--out", data.out]
        if source_dir:  # as given (e.g. "shipped"): the command resolves it where the job runs
            argv += ["--source-dir", source_dir]
        if data.sources:
            argv += ["--sources", ",".join(data.sources)]
        return argv + job_args
    return [*JOB_KINDS[kind], "--config", str(config_file), *job_args]


def materialise_config(text: str, name: str, directory: Path, filename: str | None = None) -> Path:
    """Write the submitted config with `ray.address: auto`, so the job joins this cluster, as
    `directory/filename` (default: the config's own file name)."""
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: top level must be a mapping")
    ray_section = raw.get("ray") or {}
    if not isinstance(ray_section, dict):
        raise ConfigError(f"{name}: ray must be a mapping")
    raw["ray"] = {**ray_section, "address": "auto"}
    path = directory / (filename or Path(name).name)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def config_home(name: str, source: Path | None = None) -> Path:
    """The folder the job writes its config into: the one its file came from, so relative input
    paths (resolved against their config file's folder) mean what they meant where the config was
    checked. That is the RayJob's file's folder, or the submitted file's folder inside the job's
    copy of the project (`name` is its path from the project root); else the working directory."""
    if source is not None:
        return source.resolve().parent
    rel = Path(name)
    if not rel.is_absolute() and ".." not in rel.parts and (Path.cwd() / rel.parent).is_dir():
        return Path.cwd() / rel.parent
    return Path.cwd()


def command_path() -> str:
    """The `localroute` command of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).parent / COMMAND
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(COMMAND)
    if not found:
        raise ConfigError(
            f"no `{COMMAND}` command where the job runs (beside {sys.executable} or on PATH): "
            "install the project there (`pip install -e .`, as cluster/Dockerfile does)"
        )
    return found


def _child_env() -> dict[str, str]:
    """The job's environment, with its working directory (the project copy Ray unpacked, or the
    image's project) first on PYTHONPATH, so the command runs that code."""
    env = dict(os.environ)
    parts = [str(Path.cwd()), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    return env


def run_submitted(kind: str, job_args: list[str]) -> int:
    """Entry point of a submitted job (`python -m localroute.submit run KIND [ARGS]`)."""
    text, name = os.environ.get(CONFIG_ENV), os.environ.get(CONFIG_NAME_ENV, "config.yaml")
    source = None
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
    filename = f".localroute-job-{secrets.token_hex(4)}-{Path(name).name}"
    with tempfile.TemporaryDirectory(prefix="localroute-job-") as tmp:
        path = None
        try:
            try:
                try:
                    path = materialise_config(text, name, config_home(name, source), filename)
                except OSError:  # a read-only folder: relative inputs resolve against tmp then
                    path = materialise_config(text, name, Path(tmp), filename)
                argv = job_argv(kind, path, job_args)
                command = command_path()
            except LocalrouteError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"localroute job: {shlex.join([COMMAND, *argv])} (cwd {Path.cwd()})", flush=True)
            code = subprocess.run([command, *argv], env=_child_env()).returncode
        finally:
            if path is not None:
                path.unlink(missing_ok=True)
        return code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a shell says
