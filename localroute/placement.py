"""Where a worker pool runs: the one mapping from config placements to Ray node labels.

A pool in a config says which *kind* of hardware it needs (a key of `POOL_KINDS`), optionally an
accelerator type, extra node labels, CPUs/GPUs per worker and custom resources:

    pools:
      - name: h100-vllm
        placement: {kind: nvidia-h100}            # or {accelerator_type: H100}
      - name: mac-mlx
        placement: {kind: apple-silicon, num_cpus: 2}
      - name: cpu-hf
        placement: {kind: cpu, num_cpus: 0.5}

`ray_remote_args_for(placement)` turns that into the keyword arguments Ray 2.60 takes on
`ray.remote(...)`, `.options(...)`, Ray Data's `map_batches(...)` and Serve's
`ray_actor_options`: `num_cpus`, `num_gpus`, `label_selector` and `resources` (all named
parameters of `map_batches` in 2.60, so no deprecation warning); `scaling_config_args_for` gives
the same placement as `ray.train.ScalingConfig` arguments:

    ds.map_batches(Worker, compute=ray.data.ActorPoolStrategy(size=2), **ray_remote_args_for(p))
    Deployment.options(ray_actor_options=ray_remote_args_for(p))
    ScalingConfig(num_workers=2, **scaling_config_args_for(p))

The rule is one label. Every node carries `localroute.io/hardware=<kind>` (`HARDWARE_LABEL`):
cluster nodes get it from the manifests in `cluster/` (a KubeRay group's `labels`, a `ray up`
node type's `labels`, `ray start --labels` on a Mac), and the embedded default's single local
node from `local_node_labels()`, which describes the machine it runs on (passed to `ray.init` by
the local start in localroute/ray_runtime.py; a node without the label, e.g. from a bare
`ray.init()`, says nothing about its kind, and pipelines/profile.py then drops that selector). A
pool selects on it, so the same config runs on one local node and on a mixed cluster: the pools
whose hardware is present run, and `unschedulable()` names the others instead of letting their
tasks wait forever. When a pool names an accelerator type, the selector adds Ray's own default label
`ray.io/accelerator-type` (Ray sets it on NVIDIA and Apple nodes; the manifests declare it too,
so an autoscaler can start a node of the right group from zero).

Why labels and not `num_gpus` alone: Ray 2.60 counts an Apple Metal GPU as `GPU`, so a bare
`num_gpus=1` task can land on a Mac. GPU pools also ask for GPUs (`num_gpus`), so Ray
accounts for the device and sets CUDA_VISIBLE_DEVICES.

Nothing here imports Ray at module level: configs load without starting it.
"""

from __future__ import annotations

import platform
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localroute.errors import ConfigError

HARDWARE_LABEL = "localroute.io/hardware"
# Ray's default node label for the accelerator type (ray._raylet.RAY_NODE_ACCELERATOR_TYPE_KEY).
ACCELERATOR_LABEL = "ray.io/accelerator-type"


@dataclass(frozen=True)
class PoolKind:
    """One kind of hardware a pool can ask for, and what a worker of it requests by default."""

    name: str
    description: str
    num_gpus: float  # GPUs one worker asks for unless the placement says otherwise
    accelerator_types: tuple[str, ...] = ()  # Ray's names (ray.util.accelerators) on such nodes
    accelerator_prefix: str | None = None  # for families Ray names by chip, e.g. Apple "M2-Max"

    def accepts(self, accelerator_type: str) -> bool:
        if accelerator_type in self.accelerator_types:
            return True
        return bool(self.accelerator_prefix) and bool(
            re.fullmatch(rf"{self.accelerator_prefix}\d+(-[A-Za-z]+)?", accelerator_type)
        )


POOL_KINDS: dict[str, PoolKind] = {
    kind.name: kind
    for kind in (
        PoolKind("cpu", "CPU-only node (x86-64 or ARM Linux)", 0),
        PoolKind("nvidia-h100", "NVIDIA H100 GPU node (vLLM)", 1, ("H100",)),
        PoolKind("nvidia-h200", "NVIDIA H200 GPU node (vLLM)", 1, ("H200",)),
        PoolKind("nvidia-a100", "NVIDIA A100 GPU node (vLLM)", 1, ("A100", "A100-40G", "A100-80G")),
        PoolKind("nvidia-l4", "NVIDIA L4 GPU node (vLLM)", 1, ("L4",)),
        # Ray names Apple chips "M1", "M2-Pro", ... and counts the Metal GPU as one GPU.
        PoolKind(
            "apple-silicon",
            "Apple Silicon Mac (Metal GPU, unified memory)",
            1,
            ("Apple-Silicon",),
            accelerator_prefix="M",
        ),
    )
}

# Kubernetes label syntax, which Ray labels share (ray._private.label_utils).
_NAME = r"[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_KEY = re.compile(rf"({_PREFIX}/)?{_NAME}")
_VALUE = re.compile(rf"(!?({_NAME}|in\({_NAME}(, ?{_NAME})*\)))?")


@dataclass(frozen=True)
class Placement:
    """Where one pool's workers run. Embed it in a pool's config as `placement:`.

    kind: a key of POOL_KINDS; inferred from accelerator_type when only that is given, else cpu.
    accelerator_type: Ray's name for the accelerator (ray.util.accelerators: "H100", "L4",
        "M2-Max", ...); narrows the kind.
    labels: further node labels to select on (values may use Ray's `!` and `in(...)` operators).
    num_cpus, num_gpus: per worker; None takes the kind's default (1 CPU; 1 GPU on GPU kinds).
    resources: custom Ray resources per worker.
    """

    kind: str | None = None
    accelerator_type: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    num_cpus: float | None = None
    num_gpus: float | None = None
    resources: dict[str, float] = field(default_factory=dict)

    def check(self, where: str) -> None:
        if self.kind is not None and self.kind not in POOL_KINDS:
            raise ConfigError(
                f"{where}.kind: unknown hardware kind {self.kind!r}; known: {', '.join(POOL_KINDS)}"
            )
        try:
            kind = POOL_KINDS[self.resolved_kind]
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc}") from None
        if self.accelerator_type is not None and not kind.accepts(self.accelerator_type):
            raise ConfigError(
                f"{where}.accelerator_type: {self.accelerator_type!r} is not a {kind.name} "
                f"accelerator"
                + (f" (expected one of {list(kind.accelerator_types)})" if kind.num_gpus else "")
            )
        for key, value in self.labels.items():
            if key in (HARDWARE_LABEL, ACCELERATOR_LABEL):
                raise ConfigError(
                    f"{where}.labels: {key!r} is set from kind/accelerator_type; use those instead"
                )
            if not _KEY.fullmatch(key) or len(key) > 317:
                raise ConfigError(f"{where}.labels: invalid label key {key!r}")
            if not isinstance(value, str) or not _VALUE.fullmatch(value):
                raise ConfigError(f"{where}.labels.{key}: invalid label selector {value!r}")
        for name in ("num_cpus", "num_gpus"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{where}.{name} must be >= 0, got {value}")
        if self.num_gpus and not kind.num_gpus:
            raise ConfigError(f"{where}.num_gpus: kind {kind.name!r} has no GPU")
        for name, amount in self.resources.items():
            if name in ("CPU", "GPU", "memory"):
                raise ConfigError(f"{where}.resources.{name}: use num_cpus/num_gpus instead")
            if amount <= 0:
                raise ConfigError(f"{where}.resources.{name} must be > 0, got {amount}")

    @property
    def resolved_kind(self) -> str:
        if self.kind is not None:
            return self.kind
        if self.accelerator_type is not None:
            for kind in POOL_KINDS.values():
                if kind.num_gpus and kind.accepts(self.accelerator_type):
                    return kind.name
            raise ConfigError(
                f"accelerator_type {self.accelerator_type!r} matches no hardware kind; "
                f"give kind: (one of {', '.join(POOL_KINDS)})"
            )
        return "cpu"


def as_placement(pool: Any) -> Placement:
    """A Placement from a Placement, a pool with a `.placement`, or a mapping of its fields."""
    if isinstance(pool, Placement):
        return pool
    placement = getattr(pool, "placement", None)
    if placement is not None:
        return as_placement(placement)
    if isinstance(pool, Mapping):
        if "placement" in pool:
            return as_placement(pool["placement"])
        placement = Placement(**pool)
        placement.check("placement")
        return placement
    raise TypeError(f"not a placement or a pool with one: {pool!r}")


def label_selector_for(pool: Any) -> dict[str, str]:
    """The node labels a pool's workers require."""
    p = as_placement(pool)
    selector = {HARDWARE_LABEL: p.resolved_kind}
    if p.accelerator_type is not None:
        selector[ACCELERATOR_LABEL] = p.accelerator_type
    selector.update(p.labels)
    return selector


def ray_remote_args_for(pool: Any) -> dict[str, Any]:
    """Keyword arguments for `ray.remote`/`.options`/`Dataset.map_batches` placing one worker.

    Keys: `num_cpus`, `num_gpus` (only when > 0), `label_selector`, `resources` (only when set).
    """
    p = as_placement(pool)
    kind = POOL_KINDS[p.resolved_kind]
    args: dict[str, Any] = {
        "num_cpus": 1.0 if p.num_cpus is None else float(p.num_cpus),
        "label_selector": label_selector_for(p),
    }
    num_gpus = kind.num_gpus if p.num_gpus is None else p.num_gpus
    if num_gpus:
        args["num_gpus"] = float(num_gpus)
    if p.resources:
        args["resources"] = dict(p.resources)
    return args


def scaling_config_args_for(pool: Any) -> dict[str, Any]:
    """Keyword arguments for `ray.train.ScalingConfig` placing each Train worker like a pool:
    `use_gpu`, `resources_per_worker` and `label_selector` (ScalingConfig takes all three in 2.60).
    """
    args = ray_remote_args_for(pool)
    resources = {"CPU": args["num_cpus"], **args.get("resources", {})}
    if args.get("num_gpus"):
        resources["GPU"] = args["num_gpus"]
    return {
        "use_gpu": bool(args.get("num_gpus")),
        "resources_per_worker": resources,
        "label_selector": args["label_selector"],
    }


def node_labels_for(kind: str, accelerator_type: str | None = None) -> dict[str, str]:
    """The labels a node of this kind carries (what the manifests and `ray start --labels` set)."""
    if kind not in POOL_KINDS:
        raise ConfigError(f"unknown hardware kind {kind!r}; known: {', '.join(POOL_KINDS)}")
    labels = {HARDWARE_LABEL: kind}
    if accelerator_type:
        labels[ACCELERATOR_LABEL] = accelerator_type
    return labels


def labels_flag(labels: Mapping[str, str]) -> str:
    """`ray start --labels` syntax: key=value,key=value."""
    return ",".join(f"{k}={v}" for k, v in labels.items())


def detect_local_kind() -> str:
    """The hardware kind of this machine: an NVIDIA GPU kind, apple-silicon, or cpu."""
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return "apple-silicon"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "cpu"
    names = out.stdout.upper() if out.returncode == 0 else ""
    for kind in POOL_KINDS.values():
        if kind.name.startswith("nvidia-") and any(
            t.upper() in names for t in kind.accelerator_types
        ):
            return kind.name
    return "cpu"


def local_node_labels() -> dict[str, str]:
    """Labels for the embedded default's single node: `ray.init(labels=local_node_labels())`."""
    return {HARDWARE_LABEL: detect_local_kind()}


def _selector_matches(selector: str, value: str | None) -> bool:
    negate = selector.startswith("!")
    body = selector[1:] if negate else selector
    if body.startswith("in(") and body.endswith(")"):
        hit = value is not None and value in [v.strip() for v in body[3:-1].split(",")]
    else:
        hit = value == body
    return not hit if negate else hit


def node_satisfies(
    pool: Any, labels: Mapping[str, str], resources: Mapping[str, float]
) -> str | None:
    """None when a node with these labels and total resources can host one worker, else why not."""
    args = ray_remote_args_for(pool)
    for key, want in args["label_selector"].items():
        if not _selector_matches(want, labels.get(key)):
            return f"{key}={labels.get(key)!r} does not match {want!r}"
    needs = {"CPU": args["num_cpus"], "GPU": args.get("num_gpus", 0), **args.get("resources", {})}
    for name, amount in needs.items():
        if amount and float(resources.get(name, 0)) < amount:
            return f"needs {name}={amount:g}, node has {float(resources.get(name, 0)):g}"
    return None


def unschedulable(
    pools: Mapping[str, Any] | Iterable[Any],
    nodes: list[dict] | None = None,
    node_groups: list[dict] | None = None,
) -> dict[str, str]:
    """Pools no node can host, now or after autoscaling: {pool name: reason}; empty when all can.

    `pools`: {name: pool} or pools with `.name`; `nodes`: `ray.nodes()` (read when None).
    `node_groups`: what an autoscaler may add, as {"name", "resources", "max_count"}; None reads
    them from the connected cluster's autoscaler config, where a group named after a kind (the
    manifests in cluster/ name every group so) carries that kind's labels.
    """
    if nodes is None:
        import ray

        nodes = ray.nodes()
    if node_groups is None:
        node_groups = autoscaler_node_groups()
    alive = [n for n in nodes if n.get("Alive", n.get("alive", True))]
    candidates = [(n.get("Labels") or {}, n.get("Resources") or {}) for n in alive]
    for group in node_groups:
        kind = POOL_KINDS.get(group.get("name", ""))
        if kind is not None and group.get("max_count", -1) != 0:
            accelerator = kind.accelerator_types[0] if kind.accelerator_types else None
            candidates.append((node_labels_for(kind.name, accelerator), group["resources"]))
    items = pools.items() if isinstance(pools, Mapping) else ((p.name, p) for p in pools)
    problems = {}
    for name, pool in items:
        reasons = [node_satisfies(pool, labels, res) for labels, res in candidates]
        if not candidates:
            problems[name] = "no alive node"
        elif all(reasons):
            selector = label_selector_for(pool)
            problems[name] = (
                f"no node matches {selector}"
                f" (e.g. {reasons[0]}); start one with "
                f"`ray start --address HEAD:6379 --labels {labels_flag(_node_labels(selector))}`"
            )
    return problems


def autoscaler_node_groups() -> list[dict]:
    """The node groups the connected cluster's autoscaler (v2) may start, [] when none or unknown.

    Read from the GCS (`ray._private.state`, Ray 2.60): name, resources and max_count per group,
    e.g. the KubeRay worker groups of cluster/kuberay/raycluster.yaml scaled to zero.
    """
    try:
        import ray

        if not ray.is_initialized():
            return []
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # no autoscaler, an older protocol, a private API that moved
        return []
    if config is None:
        return []
    return [
        {"name": g.name, "resources": dict(g.resources), "max_count": g.max_count}
        for g in config.node_group_configs
    ]


def _node_labels(selector: Mapping[str, str]) -> dict[str, str]:
    """Plain key=value labels from a selector, for a hint (operators dropped)."""
    return {k: v for k, v in selector.items() if re.fullmatch(_NAME, v)}
