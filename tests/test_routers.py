"""Every router fits and scores; Ray Train fits, checkpoints and resumes; artifacts round-trip."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from localroute.errors import DataError
from localroute.metrics import roc_auc
from localroute.routers import ROUTERS, RouterError, get_router_class, load_router, make_router
from localroute.routers.config import RoutersConfig, TrainConfig
from localroute.routers.threshold import threshold_for_cloud_share, threshold_for_quality
from pipelines.routers import fit_router, load_splits, score_test_split, subsample

pytestmark = pytest.mark.timeout(400)

PAIR = "mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview"
LIGHT = ["random", "always-local", "always-cloud", "oracle", "task-prior"]
LIGHT += ["knn", "mlp", "mf", "gbt", "stack"]
HEAVY = ["bert", "decoder"]


@pytest.fixture(scope="session")
def routers_data(request) -> Path:
    """A build of ../shared/data when it is there (conftest's data_build), else the build the
    package ships (localroute/data/shipped: the same RouteLLM and LLMRouter outcomes)."""
    try:
        return request.getfixturevalue("data_build")
    except pytest.skip.Exception:
        from localroute.data.paths import SHIPPED_DIR

        return SHIPPED_DIR


@pytest.fixture(scope="module")
def rcfg(tmp_path_factory) -> RoutersConfig:
    train = TrainConfig(
        epochs=2,
        batch_size=16,
        max_train_examples=48,
        storage_path=str(tmp_path_factory.mktemp("ray_train")),
    )
    return RoutersConfig(
        train=train,
        params={
            "mlp": {"epochs": 60},
            "decoder": {"model": "tiny", "cache_dir": str(tmp_path_factory.mktemp("models"))},
        },
    )


@pytest.fixture(scope="module")
def splits(routers_data, rcfg):
    """RouteLLM GSM8K for Mixtral vs GPT-4: 758 train, 281 val, 268 test (uncontaminated)."""
    s = load_splits(routers_data, "routellm_gsm8k", PAIR, rcfg, seed=7)
    s.val = subsample(s.val, 48, 0)
    s.test = subsample(s.test, 120, 0)
    return s


def test_registry_lists_every_router():
    for name in LIGHT + HEAVY:
        assert get_router_class(name).name == name
    assert set(LIGHT + HEAVY) <= set(ROUTERS)
    with pytest.raises(RouterError, match="unknown router 'nope'; known: always-cloud"):
        get_router_class("nope")


@pytest.mark.parametrize("name", LIGHT)
def test_light_router_fits_scores_and_round_trips(name, splits, rcfg, tmp_path):
    router, _ = fit_router(
        name, splits, replace(rcfg, train=replace(rcfg.train, max_train_examples=None)), 0
    )
    p = router.score(splits.test)
    assert p.shape == (len(splits.test["text"]),) and np.all((p >= 0) & (p <= 1))
    router.save(tmp_path / name, {"auc": 0.0})
    again = load_router(tmp_path / name)
    np.testing.assert_array_equal(again.score(splits.test), p)
    assert again.threshold == router.threshold
    assert again.info["fingerprint"] == router.info["fingerprint"]
    assert again.artifact_id == router.artifact_id == f"{name}-{router.fingerprint}"
    assert again.info["data_fingerprint"] == router.info["data_fingerprint"]
    assert again.info["calibrator"]["method"] == router.info["calibrator"]["method"]


def test_oracle_bounds_every_router_and_random_is_a_floor(splits, rcfg):
    metrics = {}
    for name in ["oracle", "random", "task-prior", "knn", "mlp", "mf"]:
        router, _ = fit_router(name, splits, rcfg, 0)
        metrics[name] = score_test_split(router, splits.test)
    for name, m in metrics.items():
        assert metrics["oracle"]["auc"] >= m["auc"], name
        assert metrics["oracle"]["apgr"] >= m["apgr"] - 1e-9, name
        # GSM8K gives embedding routers little to learn; none may fall far below a coin flip
        assert m["auc"] >= 0.5 - 0.15, name
    assert metrics["oracle"]["auc"] == 1.0


@pytest.mark.parametrize("name", HEAVY)
def test_transformer_router_trains_with_ray_train(name, splits, rcfg, ray_cluster, tmp_path):
    router, fit = fit_router(name, splits, rcfg, 0, storage=tmp_path / "rt")
    # The reported validation AUC is the loaded (best) checkpoint's on val, up to a tie or two
    # that float noise between the worker's and the driver's thread counts may break otherwise.
    auc = roc_auc(splits.val["label"], router.raw_score(splits.val))
    assert fit["val_auc"] == pytest.approx(auc, abs=0.01)
    assert fit["epochs_run"] == 2.0
    run = Path(router.info["train_run"]["path"])
    assert any(run.glob("checkpoint_*")), "Ray Train wrote no checkpoint"
    p = router.score(splits.test)
    assert np.all((p > 0) & (p < 1))
    router.save(tmp_path / "artifact")
    np.testing.assert_allclose(load_router(tmp_path / "artifact").score(splits.test), p, atol=1e-6)


def test_ray_train_resumes_after_a_killed_worker(splits, rcfg, ray_cluster, tmp_path):
    """Worker rank 0 exits mid-run once; Ray Train restarts the group from the checkpoint."""
    from localroute.routers.training import fit_with_ray_train

    router = make_router("bert", seed=0)
    marker = tmp_path / "killed"
    tcfg = replace(rcfg.train, epochs=3, patience=5, storage_path=str(tmp_path / "rt"))
    train = subsample(splits.train, 32, 0)
    fit = fit_with_ray_train(router, train, splits.val, tcfg, fail_once_marker=str(marker))
    assert marker.read_text() == "killed"  # the failure really happened
    assert router.info["train_run"]["resumed_from_epoch"] == 1  # and training resumed after it
    assert fit["epochs_run"] >= 3


def test_calibration_hits_its_targets():
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    t = threshold_for_cloud_share(p, 0.3)
    assert (p > t).mean() == pytest.approx(0.3, abs=0.002)
    q_local = (p < 0.5).astype(float)  # the router is right: high p = local fails
    q_cloud = np.ones_like(p)
    t, share = threshold_for_quality(p, q_local, q_cloud, target=0.9)
    # routing the highest p first, quality = share of local successes + cloud share
    assert share == pytest.approx(0.9 - (p < 0.5).mean(), abs=0.002)
    assert np.where(p > t, q_cloud, q_local).mean() >= 0.9


def test_learned_router_beats_random_on_llmrouter(routers_data):
    """The routers issue's bar: a learned router >= 0.10 AUC over random on llmrouter."""
    rc = RoutersConfig()
    s = load_splits(
        routers_data,
        "llmrouter",
        "llama-3.1-8b-instruct,llama-3.1-nemotron-51b-instruct",
        rc,
        seed=0,
    )
    knn, _ = fit_router("knn", s, rc, 0)
    random_aucs = [
        roc_auc(s.test["label"], make_router("random", seed=i).score(s.test)) for i in range(10)
    ]
    assert roc_auc(s.test["label"], knn.score(s.test)) >= np.mean(random_aucs) + 0.10


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--router", "nope", "--pair", PAIR, "--data", "routellm_gsm8k"], "unknown router 'nope'"),
        (
            ["--router", "mlp", "--pair", "a,b", "--data", "routellm_gsm8k"],
            "source 'routellm_gsm8k' has no outcomes for ['a', 'b']",
        ),
        (
            ["--router", "mlp", "--pair", "justone", "--data", "routellm_gsm8k"],
            "--pair must be LOCAL,CLOUD",
        ),
        (["--router", "mlp", "--pair", PAIR, "--data", "gsm8k"], "source 'gsm8k' has no outcomes"),
    ],
)
def test_train_bad_input_is_one_clear_line(args, message, routers_data, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data:\n  out: {routers_data}\n")
    proc = _cli("train", "--config", str(cfg), "--out", str(tmp_path / "a"), *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "a").exists()


def test_empty_training_split_is_an_error(routers_data, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from localroute.data.build import read_table

    with pytest.raises(RouterError, match="empty training split"):
        make_router("task-prior").fit({"label": np.array([]), "task": np.array([])})
    # a build whose every query is in the test split
    for kind in ("queries", "outcomes"):
        (tmp_path / kind).mkdir()
        table = read_table(routers_data, kind, ["routellm_gsm8k"])
        if kind == "queries":
            table = table.set_column(
                table.schema.get_field_index("split"), "split", pa.array(["test"] * table.num_rows)
            )
        pq.write_table(table, tmp_path / kind / "routellm_gsm8k.parquet")
    with pytest.raises(DataError, match="has no training examples"):
        load_splits(tmp_path, "routellm_gsm8k", PAIR, RoutersConfig(), seed=0)


@pytest.mark.parametrize("name", ["knn", "mlp"])
def test_static_embedder_routers(name, splits, rcfg, tmp_path):
    """The fast "static" embedder (MiniLM token vectors, no layers) trains, scores, round-trips."""
    from localroute.routers.embedders import embed_static

    v = embed_static(["What is 2 + 2?", "a"])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    router = make_router(name, embedder="static")
    router.fit(splits.train, splits.val)
    p = router.score(splits.test)
    router.save(tmp_path / name)
    np.testing.assert_array_equal(load_router(tmp_path / name).score(splits.test), p)
    with pytest.raises(ValueError, match="unknown embedder"):
        make_router(name, embedder="nope").score(splits.test)
