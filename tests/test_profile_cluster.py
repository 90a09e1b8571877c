"""The profiling job on a real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster):
nodes labelled as an H100 node, an Apple M3 and a CPU node (all really CPU).

The cluster is a different Ray instance from the session's, so the job runs in a subprocess (this
file run as a script) and the test checks what it wrote: each pool's actors ran only on nodes of
its own kind, and a worker killed mid-run lost and duplicated no row.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(420)

KINDS = {"cpu": ("cpu", None), "h100": ("nvidia-h100", "H100"), "m3": ("apple-silicon", "M3")}


def _driver(out: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from localroute.models.tiny import build_tiny_decoder
    from localroute.placement import Placement, node_labels_for
    from pipelines.profile import PoolConfig, ProfileConfig, run_profile
    from tests.test_profile import _sample_build

    data = _sample_build(out / "data")
    tiny = str(build_tiny_decoder(out / "tiny"))
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "labels": node_labels_for("cpu"),
        },
    )
    for name in ("h100", "m3"):
        kind, accel = KINDS[name]
        cluster.add_node(num_cpus=1, labels=node_labels_for(kind, accel))
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING")
    nodes = {n["NodeID"]: n["Labels"] for n in ray.nodes() if n["Alive"]}
    (out / "nodes.json").write_text(json.dumps(nodes))

    def pool(name: str, **kw) -> PoolConfig:
        kind, accel = KINDS[name]
        placement = Placement(kind=kind, accelerator_type=accel, num_cpus=0.5, num_gpus=0)
        return PoolConfig(
            name=name, model=tiny, model_name="tiny", engine_options={"device": "cpu"},
            placement=placement, batch_size=2, tdp_w=65.0, **kw,
        )  # fmt: skip

    pools = [pool(n) for n in KINDS]
    pc = ProfileConfig(split=None, max_tokens=8, max_turns=1, pools=pools, run_id="multi")
    print(json.dumps(run_profile(pc, data, out / "placed", seed=1)), flush=True)
    # The kill run: one actor, many small batches; the test kills the actor mid-run.
    pc = ProfileConfig(split=None, max_tokens=48, max_turns=1, pools=[pool("cpu")], run_id="kill")
    (out / "kill-ready").touch()
    print(json.dumps(run_profile(pc, data, out / "killed", seed=1)), flush=True)
    ray.shutdown()
    cluster.shutdown()


def _kill_first_worker(out: Path, stop: threading.Event, killed: list) -> None:
    """Once the kill run has written its first batch, SIGKILL the actor that is running it."""
    workers, outcomes = out / "killed" / "workers", out / "killed" / "outcomes"
    while not stop.is_set():
        files = list(outcomes.glob("*.parquet")) if outcomes.is_dir() else []
        records = list(workers.glob("*.json")) if workers.is_dir() else []
        if files and records:
            pid = json.loads(records[0].read_text())["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append((pid, len(files)))
            return
        time.sleep(0.05)


def test_pools_on_their_own_nodes_and_a_killed_worker_loses_nothing(tmp_path):
    import pyarrow.parquet as pq

    from pipelines.profile import read_profile_outcomes

    stop, killed = threading.Event(), []
    watcher = threading.Thread(target=_kill_first_worker, args=(tmp_path, stop, killed))
    watcher.start()
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    # Its own session, so a timeout takes down the whole cluster it started, and nothing else.
    proc = subprocess.Popen(
        [sys.executable, __file__, str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=380)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    finally:
        stop.set()
        watcher.join()
    assert proc.returncode == 0, stdout[-3000:] + stderr[-5000:]
    placed, after_kill = (json.loads(x) for x in stdout.splitlines() if x.startswith("{"))

    # Placement: every actor of a pool ran on a node labelled with that pool's kind.
    nodes = json.loads((tmp_path / "nodes.json").read_text())
    assert len(nodes) == 3
    seen = {}
    for record in (tmp_path / "placed" / "workers").glob("*.json"):
        w = json.loads(record.read_text())
        seen.setdefault(w["pool"], set()).add(nodes[w["node_id"]]["localroute.io/hardware"])
    assert seen == {name: {kind} for name, (kind, _) in KINDS.items()}
    table = read_profile_outcomes(tmp_path / "placed")
    assert table.num_rows == 3 * 9 and placed["rows"] == {name: 9 for name in KINDS}
    by_pool = {h: table["hardware"].to_pylist().count(h) for h, _ in KINDS.values()}
    assert by_pool == {kind: 9 for kind, _ in KINDS.values()}
    ok = [r for r in table.to_pylist() if r["error"] is None]
    # the too-long query fails no batch: the transformers engine keeps its newest tokens, so
    # every pool answers it within the tiny model's 2,048 positions (issue 12); the prompt
    # itself is 3,000 words
    assert len(ok) == 3 * 9
    assert all(r["latency_s"] > 0 and r["tokens_out"] >= 1 for r in ok)
    long = [r for r in ok if r["query_id"] == "too-long"]
    assert len(long) == 3 and all(r["tokens_in"] + r["tokens_out"] <= 2048 for r in long)
    assert {r["energy_provenance"] for r in table.to_pylist()} == {"estimated"}

    # The kill: the actor died mid-run, Ray restarted it, the job finished with every row once.
    assert killed, "the kill run finished before a worker could be killed"
    pid, files_at_kill = killed[0]
    assert files_at_kill < 5  # 9 queries in batches of 2: it died with batches left
    killed_table = read_profile_outcomes(tmp_path / "killed")
    keys = list(zip(*(killed_table[c].to_pylist() for c in ("query_id", "turn")), strict=True))
    assert len(keys) == len(set(keys)) == 9 and after_kill["rows"] == {"cpu": 9}
    records = [json.loads(p.read_text()) for p in (tmp_path / "killed" / "workers").glob("*")]
    assert len({r["pid"] for r in records}) >= 2 and pid in {r["pid"] for r in records}
    assert (
        sum(
            pq.read_metadata(f).num_rows
            for f in (tmp_path / "killed" / "outcomes").glob("*.parquet")
        )
        == 9
    )


if __name__ == "__main__":
    _driver(Path(sys.argv[1]))
