"""Every quickly built router: deterministic scores, calibrated p, odd text, no task column,
artifact identity; what a router reads of a conversation; Train worker placement.

Synthetic examples (no data build), the fast "static" embedder (plus MiniLM for kNN), so the
module runs in well under a minute on two cores.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from localroute.routers import ROUTERS, RouterError, load_router, make_router
from localroute.routers.calibration import IDENTITY, brier, ece, fit_calibrator
from localroute.routers.features import (
    Turn,
    conversation_text,
    cut_by_offsets,
    request_batch,
    split_conversation,
)

pytestmark = pytest.mark.timeout(300)

EASY = [
    "What is {a} plus {b}?",
    "Name a colour of the rainbow, number {a}.",
    "Say hello in French to person {a}.",
    "Is {a} an even number?",
]
HARD = [
    "Prove that there are infinitely many primes congruent to {a} mod {b}, rigorously.",
    "Derive a closed form for the integral of x^{a} log(x)^{b} and justify each step.",
    "Write a lock-free concurrent queue in C++ supporting {a} producers and {b} consumers.",
    "Explain the proof of the spectral theorem for {a}x{b} normal matrices in detail.",
]
ODD = [
    "bad \ud800 text",  # a lone surrogate: not encodable as UTF-8
    "",
    "x " * 10_000,  # 20k characters
    "東京で一番おいしいラーメン屋はどこですか？詳しく説明してください。",
    "Объясните доказательство теоремы Ферма для n = 3.",
    None,
    float("nan"),
    b"bytes \xff here",
]
# (name, params) of every router built in seconds; bert and decoder need Ray Train (test_routers)
QUICK = [
    ("random", {}),
    ("always-local", {}),
    ("always-cloud", {}),
    ("oracle", {}),
    ("task-prior", {}),
    ("knn", {"embedder": "static"}),
    ("knn", {"embedder": "minilm", "k": 10}),
    ("mlp", {"embedder": "static", "epochs": 40}),
    ("mf", {"embedder": "static", "epochs": 40}),
    ("gbt", {"embedder": "static", "max_iter": 40, "min_samples_leaf": 10}),
    (
        "stack",
        {
            "members": [
                {"name": "gbt", "embedder": "static", "max_iter": 30, "min_samples_leaf": 10},
                {"name": "mlp", "embedder": "static", "epochs": 30},
            ]
        },
    ),
]


def synthetic(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    noise = rng.random(n) < 0.1  # a few labels against the template
    texts, tasks = [], []
    for i, y in enumerate(label):
        pool = HARD if y != noise[i] else EASY
        texts.append(pool[i % len(pool)].format(a=int(rng.integers(2, 99)), b=i))
        tasks.append("math" if i % 2 else "chat")
    q_cloud = np.ones(n)
    q_local = 1.0 - label
    return {
        "query_id": np.array([f"q{seed}-{i}" for i in range(n)], dtype=object),
        "turn": np.ones(n, np.int64),
        "text": np.array(texts, dtype=object),
        "context": np.array([""] * n, dtype=object),
        "task": np.array(tasks, dtype=object),
        "prompt_words": np.array([len(t.split()) for t in texts], np.int64),
        "context_words": np.zeros(n, np.int64),
        "label": label.astype(np.int8),
        "q_local": q_local,
        "q_cloud": q_cloud,
    }


@pytest.fixture(scope="module")
def data():
    return synthetic(160, 0), synthetic(60, 1), synthetic(40, 2)


@pytest.fixture(scope="module")
def fitted(data):
    train, val, _ = data
    out = {}
    for name, params in QUICK:
        router = make_router(name, seed=0, **params)
        router.fit(train, val)
        out[f"{name}:{params.get('embedder', '')}"] = router
    return out


def _ids(_):
    return [f"{n}:{p.get('embedder', '')}" for n, p in QUICK]


def test_quick_list_covers_every_registered_router_but_the_fine_tuned():
    assert {n for n, _ in QUICK} | {"bert", "decoder"} == set(ROUTERS)


@pytest.mark.parametrize("key", _ids(None))
def test_scores_do_not_depend_on_batch_position(key, fitted, data):
    """d: the same rows score the same alone, in a batch, at any position, and shuffled."""
    router = fitted[key]
    test = data[2]
    n = len(test["text"])
    p = router.score(test)
    assert p.dtype == np.float64 and p.shape == (n,) and np.all(np.isfinite(p))
    rng = np.random.default_rng(3)
    order = rng.permutation(n)
    shuffled = {k: v[order] for k, v in test.items()}
    np.testing.assert_array_equal(router.score(shuffled), p[order])
    for i in (0, 7, n - 1):
        alone = {k: v[i : i + 1] for k, v in test.items()}
        assert router.score(alone)[0] == p[i]
    # one text repeated at every position of a batch of its own: one value
    rep = {k: np.repeat(v[:1], 37) for k, v in test.items()}
    assert len(set(router.score(rep).tolist())) == 1


@pytest.mark.parametrize("key", _ids(None))
def test_odd_text_gives_finite_probabilities(key, fitted, data):
    """f: a lone surrogate, empty, 20k chars, non-English, None, NaN, bytes: finite p in [0, 1],
    alone and mixed into a batch of ordinary rows (one bad row never fails its batch)."""
    router = fitted[key]
    test = data[2]
    m = len(ODD)
    odd = {k: np.asarray(v[:m]).copy() for k, v in test.items()}
    odd["text"] = np.array(ODD, dtype=object)
    p = router.score(odd)
    assert p.shape == (m,) and np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    mixed = {k: np.concatenate([np.asarray(test[k]), odd[k]]) for k in test}
    q = router.score(mixed)
    assert np.all(np.isfinite(q))
    np.testing.assert_array_equal(q[: len(test["text"])], router.score(test))
    for i in range(m):
        one = {k: v[i : i + 1] for k, v in odd.items()}
        assert router.score(one)[0] == p[i]


def test_a_row_that_fails_alone_gets_the_base_rate(fitted, data):
    router = fitted["mlp:static"]
    test = data[2]

    class Boom(type(router)):
        def raw_score(self, batch):
            if any("BOOM" in str(t) for t in batch["text"]):
                raise RuntimeError("cannot score this row")
            return super().raw_score(batch)

    boom = Boom.__new__(Boom)
    boom.__dict__.update(router.__dict__)
    boom.info = dict(router.info)
    batch = {k: np.asarray(v[:5]).copy() for k, v in test.items()}
    batch["text"][2] = "BOOM"
    p = boom.score(batch)
    assert p[2] == router.info["base_rate"]
    np.testing.assert_array_equal(np.delete(p, 2), np.delete(router.score(batch), 2))
    assert "unscored_rows" in boom.info["warnings"]
    with pytest.raises(RuntimeError):  # a batch of only that row fails as it is
        boom.score({k: v[2:3] for k, v in batch.items()})


def test_task_prior_without_a_task_column_falls_back_to_its_prior(fitted, data, caplog):
    """e: a served request carries no task: the global prior, flagged once."""
    router = fitted["task-prior:"]
    test = {k: v for k, v in data[2].items() if k != "task"}
    with caplog.at_level("WARNING"):
        p = router.score(test)
        router.score(test)
    np.testing.assert_array_equal(p, np.full(len(test["text"]), router.global_mean))
    assert "no task column" in router.info["warnings"]["no_task"]
    assert sum("no task column" in r.message for r in caplog.records) <= 1
    served = request_batch([{"role": "user", "content": "hi"}])
    assert router.score(served)[0] == router.global_mean


@pytest.mark.parametrize(
    "key", ["knn:static", "knn:minilm", "mlp:static", "mf:static", "gbt:static"]
)
def test_learned_routers_are_calibrated_on_validation(key, fitted, data):
    """b: a calibrator fitted on val, stored, applied in score(); Brier/ECE recorded."""
    router = fitted[key]
    cal = router.info["calibrator"]
    assert cal["method"] == "platt" and cal["on"] == "validation split" and cal["n"] == 60
    assert cal["a"] >= 0
    assert cal["brier"] <= cal["brier_raw"] + 1e-9  # on the split it was fitted on
    raw, p = router.uncalibrated(data[2]), router.score(data[2])
    np.testing.assert_allclose(p, np.round(router.calibrator(raw), 12))
    assert ece(p, data[2]["label"]) < 0.3


def test_no_validation_split_calibrates_on_a_held_out_fifth(data):
    router = make_router("mlp", embedder="static", epochs=20)
    router.fit(data[0], None)
    assert router.info["calibrator"]["on"].startswith("a seeded 20% of the training split")
    assert router.info["n_train"] == 128


def test_calibrator_fits():
    rng = np.random.default_rng(0)
    raw = rng.random(4000)
    true = 1 / (1 + np.exp(-(3 * np.log(raw / (1 - raw)) - 1)))
    y = (rng.random(raw.size) < true).astype(int)
    platt = fit_calibrator(raw, y)
    assert platt.a == pytest.approx(3, rel=0.15) and platt.b == pytest.approx(-1, abs=0.15)
    assert brier(platt(raw), y) < brier(raw, y)
    iso = fit_calibrator(raw, y, "isotonic")
    assert np.all(np.diff(iso(np.sort(raw))) >= 0)
    assert ece(iso(raw), y) < 0.03 and ece(platt(raw), y) < 0.03
    # a ranking worse than chance is not reversed: the base rate instead
    flat = fit_calibrator(raw, 1 - (raw > 0.5))
    assert flat.a == 0 and len(set(flat(raw).round(12))) == 1
    assert brier(np.array([0.0, 1.0]), np.array([0, 1])) == 0.0
    assert ece(np.array([0.2] * 10), np.array([0] * 8 + [1] * 2)) == pytest.approx(0.0)
    assert ece(np.array([0.9] * 4), np.array([0, 0, 0, 0])) == pytest.approx(0.9)
    with pytest.raises(RouterError, match="both labels"):
        fit_calibrator(raw[:5], np.zeros(5))
    assert IDENTITY(raw) is not None


def test_artifact_fingerprint_and_old_artifacts(fitted, data, tmp_path):
    """c: router.json names its contents; a changed file or an old artifact is one clear error."""
    router = fitted["mlp:static"]
    a = router.save(tmp_path / "a")
    fp = router.fingerprint
    assert len(fp) == 16 and router.artifact_id == f"mlp-{fp}"
    spec = json.loads((a / "router.json").read_text())
    assert spec["fingerprint"] == fp and spec["calibrator"]["method"] == "platt"
    again = load_router(a)
    assert again.fingerprint == fp and again.info["fingerprint"] == fp
    assert again.save(tmp_path / "b").name == "b" and again.fingerprint == fp  # same contents
    # a different threshold is a different artifact
    router.threshold += 0.01
    router.save(tmp_path / "c")
    assert router.fingerprint != fp
    router.threshold -= 0.01
    # changed weights
    (a / "head.pt").write_bytes((a / "head.pt").read_bytes() + b"\0")
    with pytest.raises(RouterError, match="does not match the artifact's contents"):
        load_router(a)
    # an artifact from before calibration
    old = tmp_path / "old"
    router.save(old)
    spec = json.loads((old / "router.json").read_text())
    del spec["calibrator"], spec["fingerprint"]
    (old / "router.json").write_text(json.dumps(spec))
    with pytest.raises(RouterError, match=rf"{old}/router.json: .*without a probability calibr"):
        load_router(old)
    with pytest.raises(RouterError, match="not fitted"):
        make_router("mlp", embedder="static").score(data[2])


def test_router_reads_the_prompt_not_a_shared_prefix():
    """a: the last user turn; a long prompt by head and tail; history apart, reply never."""
    from localroute.routers.embedders import embed_static

    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And times three?"},
        {"role": "assistant", "content": "12 (the answer this turn must not see)"},
    ]
    t2 = split_conversation(turns, 2)
    assert t2.prompt == "And times three?" and "must not see" not in t2.context
    assert t2.context == "system: Be brief.\n\nuser: What is 2 + 2?\n\nassistant: 4"
    assert (t2.prompt_words, t2.context_words) == (3, 8)
    assert split_conversation(turns, 1) == Turn("What is 2 + 2?", "system: Be brief.", 5, 2)
    # the whole-conversation rendering serve/decision.py shows (not what a router reads)
    text, pw, cw = conversation_text(turns[:4], 2)
    assert text.endswith("user: And times three?") and (pw, cw) == (3, 8)
    served = request_batch(turns[:4], task="math")
    assert served["text"][0] == t2.prompt and served["context"][0] == t2.context
    # a long shared preamble: the question at the end still changes what is embedded
    preamble = "Here is a long document about the history of mathematics. " * 80
    a, b = embed_static([preamble + "Question: prove it.", preamble + "Question: say hi."])
    assert not np.allclose(a, b)
    text = "abcdefghij"
    offsets = [(i, i + 1) for i in range(10)]
    assert cut_by_offsets(text, offsets, 4) == "a ... hij"
    assert cut_by_offsets(text, offsets, 4, keep="tail") == "ghij"


def test_bert_reads_prompt_then_recent_history():
    from transformers import AutoTokenizer

    from localroute.routers.embedders import minilm_path

    router = make_router("bert", max_length=64)
    tok = AutoTokenizer.from_pretrained(minilm_path())
    batch = {
        "text": np.array(["short question " * 40 + "THE END", "hello"], dtype=object),
        "context": np.array(["old stuff " * 100 + "recent turn", ""], dtype=object),
        "prompt_words": np.array([81, 1]),
    }
    enc = router.encode(tok, batch)
    assert enc["input_ids"].shape[1] <= 64 and enc["prompt_len"].shape == (2,)
    first = tok.decode(enc["input_ids"][0])
    assert first.index("short question") < first.index("the end") < first.index("recent turn")
    assert enc["token_type_ids"][0].max() == 1 and enc["token_type_ids"][1].max() == 0


def test_request_path_imports_no_data_stack():
    code = (
        "import sys, localroute.routers, localroute.routers.features;"
        "from localroute.routers import make_router; make_router('random');"
        "bad = [m for m in ('pyarrow', 'torch', 'ray', 'sklearn') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_train_workers_are_placed_by_localroute_placement():
    from localroute.placement import HARDWARE_LABEL, Placement
    from localroute.routers.training import TrainConfig, scaling_config_args

    cpu_node = {"Alive": True, "Labels": {HARDWARE_LABEL: "cpu"}, "Resources": {"CPU": 4}}
    gpu_node = {
        "Alive": True,
        "Labels": {HARDWARE_LABEL: "nvidia-h100", "ray.io/accelerator-type": "H100"},
        "Resources": {"CPU": 16, "GPU": 8},
    }
    default = scaling_config_args(TrainConfig(cpus_per_worker=0.5), [gpu_node])
    assert default == {
        "use_gpu": False,
        "resources_per_worker": {"CPU": 0.5},
        "label_selector": None,
    }
    h100 = TrainConfig(placement=Placement(kind="nvidia-h100", num_cpus=2))
    args = scaling_config_args(h100, [cpu_node, gpu_node])
    assert args["use_gpu"] and args["resources_per_worker"] == {"CPU": 2.0, "GPU": 1.0}
    assert args["label_selector"] == {HARDWARE_LABEL: "nvidia-h100"}
    with pytest.raises(RouterError, match="routers.train.placement: no node matches"):
        scaling_config_args(h100, [cpu_node])
    # a bare ray.init(): no node says its kind, so none is required
    bare = scaling_config_args(h100, [{"Alive": True, "Resources": {"CPU": 8, "GPU": 1}}])
    assert bare["label_selector"] is None and bare["use_gpu"]
