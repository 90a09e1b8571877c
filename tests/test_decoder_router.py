"""The decoder router on a pretrained backbone (SmolLM2-135M-Instruct): the frozen-backbone mode
computes each text's features once into a disk cache, trains its head through Ray Train on ~64
real examples, saves, loads and scores; LoRA targets q/k/v/o."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localroute.routers import RouterError, load_router, make_router
from localroute.routers.config import RoutersConfig, TrainConfig
from localroute.routers.features import contexts, texts
from pipelines.routers import fit_router, load_splits, score_test_split, subsample

pytestmark = pytest.mark.timeout(600)

PAIR = "mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview"


@pytest.fixture(scope="module")
def frozen(smollm2_cache, ray_cluster, tmp_path_factory, monkeypatch_module):
    from localroute.data.paths import SHIPPED_DIR

    monkeypatch_module.setenv("LOCALROUTE_CACHE", str(smollm2_cache))
    features = tmp_path_factory.mktemp("features")
    rcfg = RoutersConfig(
        train=TrainConfig(
            epochs=3,
            batch_size=16,
            lr=1e-3,
            max_train_examples=64,
            storage_path=str(tmp_path_factory.mktemp("ray_train")),
        ),
        params={
            "decoder": {
                "model": "smollm2-135m",
                "mode": "frozen",
                "max_length": 64,
                "feature_cache_dir": str(features),
            }
        },
    )
    splits = load_splits(SHIPPED_DIR, "routellm_gsm8k", PAIR, rcfg, seed=7)
    splits.val = subsample(splits.val, 32, 0)
    splits.test = subsample(splits.test, 32, 0)
    router, metrics = fit_router("decoder", splits, rcfg, 0)
    return router, metrics, splits, features


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _keys(router, batch) -> set[str]:
    """The feature-cache keys of a batch's rows (one per distinct prompt and history)."""
    return {router._key(t, c) for t, c in zip(texts(batch), contexts(batch), strict=True)}


def _cached(features: Path) -> set[str]:
    return {f.stem for f in features.rglob("*.npy")}


def test_frozen_backbone_trains_on_ray_train_and_round_trips(frozen, tmp_path):
    from sklearn.metrics import roc_auc_score

    router, metrics, splits, features = frozen
    assert router.mode == "frozen"
    assert router.info["train_run"]["epochs_run"] >= 1
    # Features were computed once per distinct text of the rows trained on (train capped at 64
    # with the fit's seed) and of val, in the driver, and cached by text hash: those, no more.
    trained_on = subsample(splits.train, 64, 0)
    assert _cached(features) == _keys(router, trained_on) | _keys(router, splits.val)
    # The reported validation AUC is the loaded (best) head's on val, up to a tie or two that
    # float noise between the worker's and the driver's thread counts may break differently.
    raw = router.raw_score(splits.val)
    assert metrics["val_auc"] == pytest.approx(roc_auc_score(splits.val["label"], raw), abs=0.01)
    # Only the head trains and is saved: LayerNorm + one logit over SmolLM2's 576-d state.
    state = router.module.state_dict()
    assert state["out.weight"].shape == (1, 576)
    report = score_test_split(router, splits.test)
    p = router.score(splits.test)
    cloud_needed = np.asarray(splits.test["q_local"]) < np.asarray(splits.test["q_cloud"])
    assert report["n_test"] == 32
    assert report["auc"] == pytest.approx(roc_auc_score(cloud_needed, p))  # p on test's labels
    router.save(tmp_path / "decoder", {"auc": report["auc"]})
    loaded = load_router(tmp_path / "decoder")
    np.testing.assert_allclose(loaded.score(splits.test), p, atol=1e-6)
    # Scoring the test rows cached their features too: exactly those were added.
    expected = _keys(router, trained_on) | _keys(router, splits.val) | _keys(router, splits.test)
    assert _cached(features) == expected
    # A second pass computes nothing: no backbone is loaded and no file is written.
    router._backbone = None
    before = sorted(features.rglob("*.npy"))
    router.score(splits.test)
    assert getattr(router, "_backbone", None) is None and sorted(features.rglob("*.npy")) == before


def test_lora_targets_q_k_v_o_and_bad_modes(smollm2_dir: Path):
    router = make_router("decoder", model=str(smollm2_dir), lora={"r": 8}, max_length=32)
    module, tokenizer = router.build()
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
        assert any(f"{proj}.lora_A" in n for n in names), proj
    assert any("score" in n for n in names)  # the classification head trains too
    assert not any("mlp" in n for n in names)
    enc = router.encode(tokenizer, {"text": np.array(["What is 2 + 2?"], dtype=object)})
    assert module(**enc).shape == (1,)
    with pytest.raises(RouterError, match="decoder.mode: unknown 'half'"):
        _ = make_router("decoder", mode="half").mode
