"""The `submit:` section of a config and the names a submitted job and its sender share."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    # How long to wait for a job server that answers but is still starting (its job agent not
    # up yet); an address that refuses connections is an error at once unless ready_timeout_s.
    agent_timeout_s: float = 60.0
    ready_timeout_s: float = 0.0  # wait this long for the job server to answer at all

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
        for name in ("agent_timeout_s", "ready_timeout_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name} must be >= 0, got {getattr(self, name)}")
        for key in self.env_vars:
            if key in (CONFIG_ENV, CONFIG_NAME_ENV):
                raise ConfigError(f"{where}.env_vars: {key} is set by localroute submit")
