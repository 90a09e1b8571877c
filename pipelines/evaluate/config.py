"""The `evaluate:` config section. Every model id and pair is data here, overridable from YAML."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from localroute.config import ConfigPath, bundled
from localroute.errors import ConfigError

# The model ids the default pairs name (as they appear in the published outcome rows).
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GPT4 = "gpt-4-1106-preview"
LLAMA3_8B = "meta-llama/Meta-Llama-3-8B"

# Routers evaluate may fit itself: baselines that learn nothing but a label prior or a coin.
# The learned router ("learned") is never fitted here: it is the artifact `localroute train` wrote.
BASELINE_ROUTERS = ("random", "oracle", "task-prior", "always-local", "always-cloud")

DEFAULT_STAND_INS = {  # ML.ENERGY leaderboard stand-ins (model -> leaderboard id)
    GPT4: "meta-llama/Llama-3.1-405B-Instruct",
    MIXTRAL: "Qwen/Qwen3-32B",
}
DEFAULT_CANDIDATES = (
    "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen3-14B",
    "Qwen/Qwen3-32B",
    "meta-llama/Llama-3.1-70B-Instruct",
    "meta-llama/Llama-3.1-405B-Instruct",
)
DEFAULT_ANSWER_STAND_INS = {GPT4: "gpt-4", MIXTRAL: "*"}

# (name, source, local, cloud, alpha in 1/s). Single-turn pairs leave alpha unset (None): the
# learned router fuses at its artifact's alpha (chosen on its validation split), the baselines
# at seed 001's Table I alpha of the workload (0.03 MMLU, 0.05 GSM8K). A number set here wins
# over both.
DEFAULT_MMLU = (
    ("mixtral-vs-gpt4", "routellm_mmlu", MIXTRAL, GPT4, None),
    ("llama3-8b-vs-gpt4", "routerdc_mmlu", LLAMA3_8B, GPT4, None),
)
DEFAULT_GSM8K = (
    ("mixtral-vs-gpt4", "routellm_gsm8k", MIXTRAL, GPT4, None),
    ("llama3-8b-vs-gpt4", "routerdc_gsm8k", LLAMA3_8B, GPT4, None),
)
DEFAULT_MTBENCH = ("mixtral-vs-gpt4", "routellm_mtbench", MIXTRAL, GPT4, 0.05)
DEFAULT_SAVINGS = (
    (
        "llama3.1-8b-vs-nemotron-51b",
        "llmrouter",
        "llama-3.1-8b-instruct",
        "llama-3.1-nemotron-51b-instruct",
        0.0,
    ),
)


@dataclass(frozen=True)
class PairSpec:
    """One (local, cloud) model pair on one source, and the fusion weight alpha (1/s)."""

    name: str
    source: str
    local: str
    cloud: str
    # None: the learned router's artifact alpha, the baselines' Table I workload alpha (fusion)
    alpha: float | None = None

    def check(self, where: str) -> None:
        if self.alpha is not None and (not math.isfinite(self.alpha) or self.alpha < 0):
            raise ConfigError(f"{where}.alpha must be a finite number >= 0, got {self.alpha}")


def _specs(rows: tuple[tuple, ...]) -> list[PairSpec]:
    return [PairSpec(*r) for r in rows]


@dataclass(frozen=True)
class DemoScale:
    """Caps `localroute demo` applies so its evaluate stage stays around a minute on 2 cores
    (`localroute evaluate` runs uncapped unless max_*_rows are set)."""

    max_train_rows: int | None = 2000
    max_test_rows: int | None = 2000


@dataclass(frozen=True)
class EvaluateConfig:
    """The `evaluate:` section of a config file."""

    # The router artifact (a directory with router.json) `localroute train` wrote: the one
    # router that is served, and the "learned" router of every experiment. Relative to the
    # config file that names it.
    router_artifact: ConfigPath | None = None
    links_file: ConfigPath = field(default_factory=lambda: bundled("links.yaml"))
    prices_file: ConfigPath = field(default_factory=lambda: bundled("prices.yaml"))
    link: str = "5g"  # a profile of links_file
    # Config fallback for per-token times (seed 001's Table I); null: no fallback.
    table1_preset: str | None = "paper-table1"
    # ML.ENERGY data (null: <shared data>/mlenergy when present); "none" disables calibration.
    mlenergy_dir: Literal["none"] | ConfigPath | None = None
    # Measured outcome rows (OUTCOME_SCHEMA Parquet) of a local model; null: none.
    measured: ConfigPath | None = None
    # Routers to compare: "learned" (the artifact) and baselines fitted here (BASELINE_ROUTERS).
    routers: list[str] = field(default_factory=lambda: ["learned", "random", "oracle"])
    # mlenergy stand-ins (model -> leaderboard id); others: same name, else nearest size.
    stand_ins: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_STAND_INS))
    calibration_candidates: list[str] = field(default_factory=lambda: list(DEFAULT_CANDIDATES))
    # ML.ENERGY configuration: GPU model, and the vLLM max_num_seqs nearest to these (8, the
    # smallest published, is one user's view of a local server; the cloud serves many users).
    mlenergy_gpu: str = "B200"
    # Where a side's mean response length comes from, first that has one: "published" (word
    # counts of the model's published answers to this workload), "calibrated" (the ML.ENERGY
    # stand-in's mean output length on chat traffic), "config" (table1_preset's workloads).
    response_lengths: list[str] = field(
        default_factory=lambda: ["published", "calibrated", "config"]
    )
    local_max_num_seqs: int = 8
    cloud_max_num_seqs: int = 128
    # Models whose published MT-Bench answers stand in for a model's answer lengths.
    # "*": the per-turn mean over every model with a published answer.
    answer_stand_ins: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ANSWER_STAND_INS))
    mmlu: list[PairSpec] = field(default_factory=lambda: _specs(DEFAULT_MMLU))
    gsm8k: list[PairSpec] = field(default_factory=lambda: _specs(DEFAULT_GSM8K))
    mtbench: PairSpec = field(default_factory=lambda: PairSpec(*DEFAULT_MTBENCH))
    # Where the multi-turn baselines that need fitting (task-prior) learn: same pair, other sources.
    mtbench_train_sources: list[str] = field(
        default_factory=lambda: ["routellm_gsm8k", "routellm_mmlu"]
    )
    # seed 000's table: every single-turn pair above plus these.
    savings_pairs: list[PairSpec] = field(default_factory=lambda: _specs(DEFAULT_SAVINGS))
    # Accuracy targets as a fraction of the way from local-only to cloud-only accuracy.
    targets: list[float] = field(default_factory=lambda: [0.5, 0.8])
    accuracy_tolerance: float = 0.01  # matched accuracy: >= cloud-only minus this
    max_train_rows: int | None = None
    max_test_rows: int | None = None
    mtbench_thresholds: int = 101
    plot_points: int = 200
    demo: DemoScale = field(default_factory=DemoScale)

    def check(self, where: str) -> None:
        for name in (
            "local_max_num_seqs",
            "cloud_max_num_seqs",
            "mtbench_thresholds",
            "plot_points",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_train_rows", "max_test_rows"):
            v = getattr(self, name)
            if v is not None and v < 10:
                raise ConfigError(f"{where}.{name} must be >= 10 or null, got {v}")
        for i, t in enumerate(self.targets):
            if not 0.0 <= t <= 1.0:
                raise ConfigError(f"{where}.targets[{i}] must be in [0, 1], got {t}")
        if not 0.0 <= self.accuracy_tolerance < 1.0:
            raise ConfigError(
                f"{where}.accuracy_tolerance must be in [0, 1), got {self.accuracy_tolerance}"
            )
        self._check_links(where)
        for i, r in enumerate(self.response_lengths):
            if r not in ("published", "calibrated", "config"):
                raise ConfigError(
                    f"{where}.response_lengths[{i}] must be published, calibrated or config, "
                    f"got {r!r}"
                )
        self._check_routers(where)

    def _check_links(self, where: str) -> None:
        from localroute.core.profiles import (
            get_link,
            get_preset,
            load_latency_presets,
            load_link_profiles,
        )
        from localroute.core.sides import CostConfigError

        links_file = self.links_file
        try:
            get_link(self.link, load_link_profiles(links_file))
        except CostConfigError as exc:
            raise ConfigError(f"{where}.link: {exc}") from None
        if self.table1_preset is not None:
            try:
                get_preset(self.table1_preset, load_latency_presets(links_file))
            except CostConfigError as exc:
                raise ConfigError(f"{where}.table1_preset: {exc}") from None

    def _check_routers(self, where: str) -> None:
        from localroute.routers import RouterError, get_router_class

        if not self.routers:
            raise ConfigError(f"{where}.routers must name at least one router")
        for i, r in enumerate(self.routers):
            if r == "learned":
                continue
            try:
                get_router_class(r)
            except RouterError as exc:
                raise ConfigError(f"{where}.routers[{i}]: {exc}") from None
            if r not in BASELINE_ROUTERS:
                raise ConfigError(
                    f"{where}.routers[{i}]: {r!r} is a learned router; evaluate fits only the "
                    f"baselines {', '.join(BASELINE_ROUTERS)} and evaluates the learned router "
                    f"from {where}.router_artifact (`localroute train` writes it); name it "
                    "'learned'"
                )
