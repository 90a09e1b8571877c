"""cluster/: every manifest parses and is well-formed, and they agree with each other, with
localroute/placement.py and with the configs (every label and resource a pool asks for exists)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from cli.config import load_config
from localroute import placement
from localroute.errors import ConfigError
from localroute.placement import (
    ACCELERATOR_LABEL,
    HARDWARE_LABEL,
    POOL_KINDS,
    Placement,
    node_satisfies,
    ray_remote_args_for,
    unschedulable,
)

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
KUBERAY = CLUSTER / "kuberay"
RAY_UP = CLUSTER / "ray-up" / "aws.yaml"
JOIN_APPLE = CLUSTER / "join-apple-silicon.sh"
# What a Mac that joined with cluster/join-apple-silicon.sh offers (Ray counts Metal as 1 GPU; the
# smallest Apple Silicon chips have 8 cores).
APPLE_NODE_RESOURCES = {"CPU": 8.0, "GPU": 1.0}
SHARED = "/mnt/shared"  # mounted on every node by both cluster definitions


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _kuberay() -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for path in sorted(KUBERAY.glob("*.yaml")):
        for doc in _docs(path):
            found.setdefault(doc["kind"], []).append(doc)
    return found


def _raycluster() -> dict:
    (cluster,) = _kuberay()["RayCluster"]
    return cluster


def _shared_claim() -> dict:
    (claim,) = _kuberay()["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # written from every node
    return claim


def _quantity(value) -> float:
    """A Kubernetes quantity ("500m", "8", 2) as a number of units."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _groups(spec: dict) -> dict[str, dict]:
    """Worker groups of a RayCluster spec as nodes: {group: {labels, resources, min, max}}."""
    out = {}
    for group in spec["workerGroupSpecs"]:
        out[group["groupName"]] = {
            "labels": group.get("labels", {}),
            "resources": {k: float(v) for k, v in group.get("resources", {}).items()},
            "min": group["minReplicas"],
            "max": group["maxReplicas"],
        }
    return out


def _ray_up_types() -> dict[str, dict]:
    cfg = yaml.safe_load(RAY_UP.read_text(encoding="utf-8"))
    return {
        name: {
            "labels": t.get("labels", {}),
            "resources": {k: float(v) for k, v in t["resources"].items()},
        }
        for name, t in cfg["available_node_types"].items()
        if name != cfg["head_node_type"]
    }


def _apple_node() -> dict:
    script = JOIN_APPLE.read_text(encoding="utf-8")
    (flag,) = re.findall(r'--labels="([^"]+)"', script)
    labels = dict(pair.split("=", 1) for pair in flag.split(","))
    return {"labels": labels, "resources": APPLE_NODE_RESOURCES}


# ----------------------------------------------------------------------------- every file parses


def test_every_manifest_parses():
    files = sorted(p for p in CLUSTER.rglob("*") if p.suffix in (".yaml", ".yml"))
    assert {p.relative_to(CLUSTER).as_posix() for p in files} >= {
        "kuberay/raycluster.yaml",
        "kuberay/rayservice.yaml",
        "kuberay/rayjob-profile.yaml",
        "kuberay/rayjob-train.yaml",
        "ray-up/aws.yaml",
    }
    for path in files:
        docs = _docs(path)
        assert docs and all(isinstance(d, dict) for d in docs), path
    kinds = _kuberay()
    assert {k: len(v) for k, v in kinds.items()} == {
        "RayCluster": 1,
        "RayService": 1,
        "RayJob": 2,
        "PersistentVolumeClaim": 1,
    }
    for kind, docs in kinds.items():
        for doc in docs:
            assert doc["metadata"]["name"], kind
            if kind.startswith("Ray"):
                assert doc["apiVersion"] == "ray.io/v1", kind


def test_ray_up_nodes_mount_the_shared_storage():
    cfg = yaml.safe_load(RAY_UP.read_text(encoding="utf-8"))
    assert f"-v {SHARED}:{SHARED}" in cfg["docker"]["run_options"]
    assert any("mount -t nfs4" in c and SHARED in c for c in cfg["initialization_commands"])


def test_ray_up_yaml_validates_against_rays_own_schema():
    import importlib.util

    import jsonschema

    (ray_dir,) = importlib.util.find_spec("ray").submodule_search_locations
    schema = json.loads((Path(ray_dir) / "autoscaler" / "ray-schema.json").read_text())
    cfg = yaml.safe_load(RAY_UP.read_text(encoding="utf-8"))
    jsonschema.validate(cfg, schema)
    assert cfg["available_node_types"][cfg["head_node_type"]]["resources"] == {"CPU": 0}


def test_shell_script_parses():
    import subprocess

    assert subprocess.run(["bash", "-n", str(JOIN_APPLE)]).returncode == 0


# ---------------------------------------------------------------- the KubeRay manifests are sound


def _cluster_specs():
    kinds = _kuberay()
    yield "RayCluster", kinds["RayCluster"][0]["spec"]
    yield "RayService", kinds["RayService"][0]["spec"]["rayClusterConfig"]


@pytest.mark.parametrize(("kind", "spec"), list(_cluster_specs()))
def test_kuberay_cluster_spec_is_consistent(kind, spec):
    from ray._private.label_utils import validate_node_label_syntax

    ray_version = spec["rayVersion"]
    assert ray_version == "2.60.0"
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["version"] == "v2"  # scales up on label selectors
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    pods = [("head", head, None)] + [(g["groupName"], g, g) for g in spec["workerGroupSpecs"]]
    for name, group, worker in pods:
        validate_node_label_syntax(group.get("labels", {}))
        assert all(isinstance(v, str) for v in group.get("rayStartParams", {}).values()), name
        assert all(isinstance(v, str) for v in group.get("resources", {}).values()), name
        pod = group["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"].split(":")[0].endswith("localroute"), name
        # Every node sees the shared claim at SHARED (where the cluster configs write).
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        claim = volumes[mounts[SHARED]]["persistentVolumeClaim"]["claimName"]
        assert claim == _shared_claim()["metadata"]["name"], name
        if worker is None:
            continue
        assert 0 <= worker["minReplicas"] <= worker.get("replicas", 0) <= worker["maxReplicas"]
        limits = container["resources"]["limits"]
        ray_resources = {k: _quantity(v) for k, v in group["resources"].items()}
        # Ray's logical resources are what the pod really gets.
        assert ray_resources["CPU"] == _quantity(limits["cpu"]), name
        assert ray_resources.get("GPU", 0) == _quantity(limits.get("nvidia.com/gpu", 0)), name
        assert container["image"].endswith("-gpu") == bool(ray_resources.get("GPU")), name


def test_worker_groups_are_the_placement_kinds_with_their_labels():
    for name, group in _groups(_raycluster()["spec"]).items():
        assert name in POOL_KINDS, name
        accelerator = group["labels"].get(ACCELERATOR_LABEL)
        assert group["labels"] == placement.node_labels_for(name, accelerator), name
        kind = POOL_KINDS[name]
        if kind.num_gpus:
            assert kind.accepts(accelerator), name
            assert group["resources"]["GPU"] >= 1, name
        else:
            assert accelerator is None and "GPU" not in group["resources"], name


def test_ray_up_node_types_mirror_the_kuberay_groups():
    kuberay = _groups(_raycluster()["spec"])
    ray_up = _ray_up_types()
    assert set(ray_up) == set(kuberay)
    for name, node in ray_up.items():
        assert node["labels"] == kuberay[name]["labels"], name
        assert bool(node["resources"].get("GPU")) == bool(kuberay[name]["resources"].get("GPU"))


def test_apple_join_script_labels_match_placement():
    node = _apple_node()
    assert node["labels"] == placement.node_labels_for("apple-silicon")
    script = JOIN_APPLE.read_text(encoding="utf-8")
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1" in script
    assert "ray start" in script and "--address" in script


def test_rayservice_runs_the_raycluster_and_the_serve_app():
    kinds = _kuberay()
    (service,) = kinds["RayService"]
    assert service["spec"]["rayClusterConfig"] == _raycluster()["spec"]
    from ray.serve.schema import ServeDeploySchema

    serve_cfg = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_cfg)  # Ray's own schema for serveConfigV2
    assert serve_cfg["http_options"]["host"] == "0.0.0.0"
    for app in serve_cfg["applications"]:
        module, _, attr = app["import_path"].partition(":")
        source = (REPO / Path(*module.split("."))).with_suffix(".py")
        assert re.search(rf"^def {attr}\(", source.read_text(encoding="utf-8"), re.M), app
        config = app["args"]["config"]
        assert config.startswith("/home/ray/localroute/"), config  # the image's project
        local = REPO / config.removeprefix("/home/ray/localroute/")
        load_config(local)  # the localroute config it names exists and is valid


def test_rayservice_serves_configs_serve_yaml():
    """serveConfigV2 is configs/serve.yaml but for HTTP on 0.0.0.0 and paths in the image."""
    (service,) = _kuberay()["RayService"]
    ours = yaml.safe_load(service["spec"]["serveConfigV2"])
    theirs = yaml.safe_load((REPO / "configs" / "serve.yaml").read_text(encoding="utf-8"))
    assert ours["http_options"].pop("host") == "0.0.0.0"
    theirs["http_options"].pop("host", None)
    for app in ours["applications"]:
        args = app["args"]
        assert args.pop("base_dir") == "/home/ray/localroute"
        args["config"] = args["config"].removeprefix("/home/ray/localroute/")
    assert ours == theirs


def test_rayjobs_run_existing_commands_on_the_raycluster():
    from cli.main import build_parser
    from localroute.submit import JOB_KINDS

    cluster_name = _raycluster()["metadata"]["name"]
    (subcommands,) = [a for a in build_parser()._actions if isinstance(a.choices, dict)]
    for job in _kuberay()["RayJob"]:
        spec = job["spec"]
        assert spec["clusterSelector"] == {"ray.io/cluster": cluster_name}
        cd, run = (shlex.split(part) for part in spec["entrypoint"].split("&&"))
        assert cd == ["cd", "/home/ray/localroute"]
        assert run[:4] == ["python", "-m", "localroute.submit", "run"]
        kind, flag, config = run[4:7]
        assert kind in JOB_KINDS and flag == "--config", run
        assert JOB_KINDS[kind][0] in subcommands.choices, run
        # The command the job runs parses (argparse exits on unknown or missing arguments), and
        # an --out it gives is on the shared storage.
        args = build_parser().parse_args([*JOB_KINDS[kind], "--config", config, *run[7:]])
        if getattr(args, "out", None):
            assert Path(args.out).is_relative_to(SHARED), (run, args.out)
        config_path = REPO / config
        if not config_path.is_file():
            pytest.fail(f"{job['metadata']['name']}: {config} does not exist in the repository")
        cfg = load_config(config_path)
        # Outputs written on the cluster must be on storage every node mounts.
        outs = [cfg.data.out] + ([cfg.profile.out] if kind == "profile" else [])
        for out in outs:
            assert Path(out).is_relative_to(SHARED) or "://" in out, (config, out)


# -------------------------------------------------- every pool a config asks for has its hardware


def _placements(node, where=""):
    """Every `placement:` mapping in a parsed YAML document, with where it was found."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key == "placement" and isinstance(value, dict):
                yield here, value
            else:
                yield from _placements(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _placements(value, f"{where}[{i}]")


def _config_placements():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for where, value in _placements(raw):
            yield f"{path.name}:{where}", value


def test_every_config_placement_has_a_node_in_each_cluster_definition():
    kuberay = _groups(_raycluster()["spec"])
    ray_up = _ray_up_types()
    apple = _apple_node()
    checked = 0
    for where, raw in _config_placements():
        p = Placement(**raw)
        p.check(where)
        for name, nodes in (("KubeRay RayCluster", kuberay), ("ray up", ray_up)):
            if p.resolved_kind == "apple-silicon":
                nodes = {"join-apple-silicon.sh": apple}  # Macs join by hand, in both
            reasons = {g: node_satisfies(p, n["labels"], n["resources"]) for g, n in nodes.items()}
            assert any(r is None for r in reasons.values()), f"{where}: no {name} node: {reasons}"
        checked += 1
    profile_cluster = REPO / "configs" / "profile-cluster.yaml"
    if profile_cluster.is_file():
        assert checked, "configs/profile-cluster.yaml has no placement to check"


# ------------------------------------------------------------------------- placement, the mapping


def test_every_kind_is_hosted_somewhere():
    kuberay = _groups(_raycluster()["spec"])
    hosted = set(kuberay) | {"apple-silicon"}
    # Kinds the manifests do not run (yet) are named here, so adding a kind is a conscious step.
    assert set(POOL_KINDS) - hosted == {"nvidia-h200", "nvidia-a100"}


def test_remote_args_for_each_way_of_placing_a_pool():
    assert ray_remote_args_for(Placement()) == {
        "num_cpus": 1.0,
        "label_selector": {HARDWARE_LABEL: "cpu"},
    }
    assert ray_remote_args_for(Placement(kind="nvidia-h100")) == {
        "num_cpus": 1.0,
        "num_gpus": 1.0,
        "label_selector": {HARDWARE_LABEL: "nvidia-h100"},
    }
    # By accelerator type alone: the kind follows, and Ray's accelerator label narrows it.
    assert ray_remote_args_for({"accelerator_type": "L4", "num_cpus": 4}) == {
        "num_cpus": 4.0,
        "num_gpus": 1.0,
        "label_selector": {HARDWARE_LABEL: "nvidia-l4", ACCELERATOR_LABEL: "L4"},
    }
    mac = Placement(kind="apple-silicon", accelerator_type="M2-Max", labels={"site": "lab"})
    assert ray_remote_args_for(mac)["label_selector"] == {
        HARDWARE_LABEL: "apple-silicon",
        ACCELERATOR_LABEL: "M2-Max",
        "site": "lab",
    }
    half = ray_remote_args_for(
        {"placement": {"kind": "cpu", "num_cpus": 0.5, "resources": {"ssd": 1}}}
    )
    assert half == {
        "num_cpus": 0.5,
        "label_selector": {HARDWARE_LABEL: "cpu"},
        "resources": {"ssd": 1},
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "tpu"}, r"p.kind: unknown hardware kind 'tpu'"),
        ({"kind": "nvidia-l4", "accelerator_type": "H100"}, r"'H100' is not a nvidia-l4"),
        ({"accelerator_type": "Z9"}, r"p.accelerator_type 'Z9' matches no hardware kind"),
        ({"kind": "cpu", "num_gpus": 1}, r"p.num_gpus: kind 'cpu' has no GPU"),
        ({"labels": {HARDWARE_LABEL: "cpu"}}, r"is set from kind/accelerator_type"),
        ({"labels": {"bad key!": "x"}}, r"invalid label key"),
        ({"labels": {"zone": "in(a,,b)"}}, r"invalid label selector"),
        ({"num_cpus": -1}, r"p.num_cpus must be >= 0"),
        ({"resources": {"GPU": 1}}, r"use num_cpus/num_gpus"),
    ],
)
def test_placement_errors_name_the_field(raw, message):
    with pytest.raises(ConfigError, match=message):
        Placement(**raw).check("p")


def test_the_same_placement_for_data_train_and_serve():
    """What production passes to each Ray library, built from one Placement: the profile's Ray
    Data pool, Ray Train's ScalingConfig and a Serve deployment's actor options."""
    from ray.serve.schema import RayActorOptionsSchema
    from ray.train import ScalingConfig

    from localroute.routers.training import TrainConfig, scaling_config_args
    from pipelines.profile.config import PoolConfig
    from pipelines.profile.driver import remote_args
    from serve.config import BackpressureOptions, DeploymentScaling

    h100 = Placement(kind="nvidia-h100", num_cpus=4)
    node = {
        "Alive": True,
        "Labels": {HARDWARE_LABEL: "nvidia-h100"},
        "Resources": {"CPU": 8.0, "GPU": 1.0},
    }
    selector = {HARDWARE_LABEL: "nvidia-h100"}

    data = remote_args(PoolConfig(name="h100", model="tiny", placement=h100), [node])
    assert data == {"num_cpus": 4.0, "num_gpus": 1.0, "label_selector": selector}

    train = scaling_config_args(TrainConfig(placement=h100), nodes=[node])
    assert train == {
        "use_gpu": True,
        "resources_per_worker": {"CPU": 4.0, "GPU": 1.0},
        "label_selector": selector,
    }
    ScalingConfig(num_workers=2, **train)  # Ray Train takes them as they are

    actor = DeploymentScaling(placement=h100).options(BackpressureOptions())["ray_actor_options"]
    assert actor == data  # the same worker, whichever library starts it
    RayActorOptionsSchema.model_validate(actor)  # so does Serve
    assert not placement.scaling_config_args_for(Placement(num_cpus=2))["use_gpu"]


def test_placement_loads_as_a_config_section_field(tmp_path):
    """Placement is a plain config dataclass: the loader coerces and checks it like any section."""
    from dataclasses import dataclass, field

    from localroute.config import build as _build

    @dataclass(frozen=True)
    class Pool:
        name: str
        placement: Placement = field(default_factory=Placement)

    pool = _build(Pool, {"name": "gpu", "placement": {"accelerator_type": "H100"}}, "pools[0]")
    assert ray_remote_args_for(pool)["label_selector"][HARDWARE_LABEL] == "nvidia-h100"
    with pytest.raises(ConfigError, match=r"pools\[0\].placement.kind: unknown hardware kind"):
        _build(Pool, {"name": "x", "placement": {"kind": "nope"}}, "pools[0]")


def test_unschedulable_names_pools_without_hardware():
    nodes = [
        {"Alive": True, "Labels": {HARDWARE_LABEL: "cpu"}, "Resources": {"CPU": 4.0}},
        {"Alive": False, "Labels": {HARDWARE_LABEL: "nvidia-l4"}, "Resources": {"GPU": 1.0}},
    ]
    pools = {
        "cpu": Placement(kind="cpu", num_cpus=0.5),
        "too-big": Placement(kind="cpu", num_cpus=8),
        "l4": Placement(kind="nvidia-l4"),
    }
    problems = unschedulable(pools, nodes, node_groups=[])
    assert set(problems) == {"too-big", "l4"}
    assert "needs CPU=8" in problems["too-big"]
    assert f"--labels {HARDWARE_LABEL}=nvidia-l4" in problems["l4"]
    assert unschedulable(pools, [], []) == {name: "no alive node" for name in pools}
    # A group the autoscaler may start counts (KubeRay groups are named after their kind); one
    # scaled to a maximum of zero does not.
    groups = [
        {"name": "nvidia-l4", "resources": {"CPU": 8.0, "GPU": 1.0}, "max_count": 4},
        {"name": "cpu", "resources": {"CPU": 8.0}, "max_count": 0},
    ]
    assert set(unschedulable(pools, nodes, groups)) == {"too-big"}
    l4_by_type = {"l4": Placement(accelerator_type="L4")}
    assert unschedulable(l4_by_type, [], groups[:1]) == {}


def test_selector_operators_follow_ray():
    labels = {HARDWARE_LABEL: "cpu", "zone": "b"}
    res = {"CPU": 2.0}
    assert node_satisfies({"labels": {"zone": "in(a, b)"}}, labels, res) is None
    assert node_satisfies({"labels": {"zone": "!in(a,b)"}}, labels, res)
    assert node_satisfies({"labels": {"zone": "!a"}}, labels, res) is None
    assert node_satisfies({"labels": {"rack": "!r1"}}, labels, res) is None  # absent: not r1
