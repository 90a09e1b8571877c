"""Train from measurements: `localroute train --data profile:DIR` on the rows `localroute
profile` wrote (here the tiny model on real RouteLLM MMLU queries of every split), the cloud
side joined from gpt-4-1106's published outcomes on the same queries; the artifact names the
models it was trained for and where each side's labels came from; too few rows is one error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main

pytestmark = pytest.mark.timeout(300)
GPT4 = "gpt-4-1106-preview"


@pytest.fixture(scope="module")
def profiled(ray_cluster, small_build: Path, tmp_path_factory) -> Path:
    from localroute.models.tiny import build_tiny_decoder
    from pipelines.profile import PoolConfig, ProfileConfig, run_profile

    tmp = tmp_path_factory.mktemp("profiled")
    tiny = str(build_tiny_decoder(tmp / "tiny"))
    pool = PoolConfig(
        name="cpu", model=tiny, model_name="tiny", engine_options={"device": "cpu"}, batch_size=32
    )
    cfg = ProfileConfig(
        sources=["routellm_mmlu"], split=None, limit=160, max_tokens=2, pools=[pool], run_id="p"
    )
    run_profile(cfg, small_build, tmp / "profile", seed=3, log=lambda *_: None)
    return tmp / "profile"


def _train(tmp: Path, data_dir: Path, data: str, pair: str, capsys) -> tuple[int, str]:
    cfg = tmp / "train.yaml"
    cfg.write_text(f"data:\n  out: {data_dir}\n")
    argv = ["train", "--config", str(cfg), "--router", "task-prior", "--pair", pair]
    rc = main([*argv, "--data", data, "--out", str(tmp / "router")])
    return rc, capsys.readouterr()


def test_train_from_a_profile_run(profiled: Path, small_build: Path, tmp_path, capsys) -> None:
    from localroute.data.build import read_table

    rows = read_table(profiled, "outcomes")
    model = rows["model"][0].as_py()
    assert rows.num_rows == 160 and set(rows["provenance"].to_pylist()) == {"measured"}
    rc, out = _train(tmp_path, small_build, f"profile:{profiled}", f"{model},{GPT4}", capsys)
    assert rc == 0, out.err
    spec = json.loads((tmp_path / "router" / "router.json").read_text())
    info = spec["info"]
    local, cloud = info["candidates"]
    assert (local["role"], local["model"]) == ("local", model)
    assert local["labels"] == f"measured ({model}, profile:{profiled})"
    assert (cloud["model"], cloud["labels"]) == (GPT4, f"published ({GPT4}, routellm_mmlu)")
    assert info["labels"]["measured"] == info["n_train"] + info["calibration"]["n_val"]
    assert 0 < info["labels"]["measured"] < 160  # test-split queries are held out
    assert info["source"] == "routellm_mmlu"
    # the served check reads the same candidates: this artifact fits a server of these models
    from localroute.routers.trained_for import check_pairing

    pairing = check_pairing(info, {"local": [model], "cloud": [GPT4]})
    assert not pairing.stand_in


def test_too_few_profiled_rows_is_one_clear_error(
    profiled: Path, small_build: Path, tmp_path, capsys
) -> None:
    import pyarrow.parquet as pq

    from localroute.data.build import read_table

    few = tmp_path / "few"
    (few / "outcomes").mkdir(parents=True)
    rows = read_table(profiled, "outcomes").slice(0, 30)
    pq.write_table(rows, few / "outcomes" / "part.parquet")
    model = rows["model"][0].as_py()
    rc, out = _train(tmp_path, small_build, f"profile:{few}", f"{model},{GPT4}", capsys)
    assert rc == 2 and out.err.count("error:") == 1
    assert f"30 measured rows of {model} give" in out.err and "need >= 50 train" in out.err
    rc, out = _train(tmp_path, small_build, f"profile:{few}", f"nobody,{GPT4}", capsys)
    assert rc == 2 and f"no measured rows of 'nobody'; it measured {model}" in out.err
    assert not (tmp_path / "router" / "router.json").exists()  # nothing half-written


def test_a_retrained_router_is_promoted_only_when_it_ranks_better(tmp_path, capsys) -> None:
    """The retrain loop's gate (`train --promote-into`): into an empty directory a router goes;
    over a router that ranks the held-out labels better it does not (the served one stays)."""
    import numpy as np

    from localroute.routers import load_router, make_router
    from pipelines.routers.train import promote

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    test = {"text": np.array([f"q{i}" for i in range(200)], dtype=object), "label": y}
    oracle, coin = make_router("oracle"), make_router("random", seed=3)
    for r in (oracle, coin):
        r.fit(test)
    served = tmp_path / "served"
    first = promote(coin, test, served, {})
    assert first["promoted"] and first["serving_auc"] is None
    assert load_router(served).name == "random"
    better = promote(oracle, test, served, {})
    assert better["promoted"] and better["auc"] == 1.0 and better["serving_auc"] < 0.6
    assert load_router(served).name == "oracle"
    worse = promote(coin, test, served, {})
    assert not worse["promoted"] and worse["serving_auc"] == 1.0
    assert load_router(served).name == "oracle"  # the better router keeps serving
    assert "NOT promoted" in capsys.readouterr().out
