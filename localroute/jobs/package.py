"""What a submission sends: the project folder (minus what stays behind), the pip requirements,
the environment with the config's text, the entry point, and the job server's address."""

from __future__ import annotations

import os
import shlex
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from localroute.errors import ConfigError
from localroute.jobs.settings import ADDRESS_ENVS, CONFIG_ENV, CONFIG_NAME_ENV, SubmitConfig


def project_root(working_dir: str | Path) -> Path:
    root = Path(working_dir).expanduser().resolve()
    if not (root / "pyproject.toml").is_file():
        raise ConfigError(
            f"submit.working_dir: {root} has no pyproject.toml; run from the project root or set "
            "submit.working_dir"
        )
    return root


def _excluded(rel: str, is_dir: bool, patterns: list[str]) -> bool:
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


def relative_outputs(cfg, job_args: list[str] = ()) -> list[tuple[str, str]]:
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
