"""A gradient-boosted router: scikit-learn's HistGradientBoostingClassifier on the prompt's
embedding (the fast `static` MiniLM token vectors by default, or the full encoder) and cheap
features (features.cheap_features: prompt length, digits, code markers, question form, history
length, turn), plus, with `task_feature: true`, the training split's mean label of the row's
task (the global mean for a request without one; a seeded share of training rows sees that too).

Trees on a fixed feature vector score a row independently of its batch-mates, in float64, so a
query's p never depends on its batch position; the raw score is calibrated by training.fit.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from localroute.routers.embedding_routers import _Embedded, _labels
from localroute.routers.errors import RouterError
from localroute.routers.features import Batch, cheap_features, clean_text


class GbtRouter(_Embedded):
    """HistGradientBoostingClassifier on [embedding ; cheap features]."""

    name = "gbt"
    state_files = ("gbt.pkl",)
    default_embedder = "static"
    extra_embedders = ("none",)  # cheap features only

    def features(self, batch: Batch, drop_task: np.ndarray | None = None) -> np.ndarray:
        parts = [cheap_features(batch)]
        if self.params.get("embedder", self.default_embedder) != "none":
            parts.insert(0, self.embed(batch))
        if self.params.get("task_feature", False):
            parts.append(self._task_column(batch, drop_task))
        return np.concatenate(parts, axis=1)

    def _task_column(self, batch: Batch, drop: np.ndarray | None) -> np.ndarray:
        """task_feature: the training split's mean label of the row's task (a target encoding);
        the global mean where the batch has no task or one never seen, as for a served request.
        In training a seeded share of rows (task_dropout) gets the global mean too, so the trees
        learn what to do without the task."""
        n = len(batch["text"])
        col = np.full(n, self.task_global)
        if "task" in batch:
            col = np.array(
                [self.task_table.get(clean_text(t), self.task_global) for t in batch["task"]]
            )
        if drop is not None:
            col = np.where(drop, self.task_global, col)
        return col[:, None]

    def learn(self, train: Batch, val: Batch | None) -> dict[str, float]:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        y = _labels(train).astype(np.int64)
        drop = None
        if self.params.get("task_feature", False):
            self.task_global = float(y.mean())
            tasks = np.array([clean_text(t) for t in train.get("task", [""] * len(y))], object)
            self.task_table = {str(t): float(y[tasks == t].mean()) for t in np.unique(tasks)}
            rng = np.random.default_rng(self.seed + 17)
            drop = rng.random(len(y)) < float(self.params.get("task_dropout", 0.3))
        x = self.features(train, drop)
        # one OpenMP thread: on a busy 2-core machine OpenMP's spinning threads make the fit
        # ~20x slower (measured: 153 s vs 8 s for 8k rows); the router serves on one core anyway
        w = np.asarray(train["weight"], np.float64) if "weight" in train else None
        with threadpool_limits(1, user_api="openmp"):
            self.model = self._fit(HistGradientBoostingClassifier, x, y, w)
        out = {"iterations": float(self.model.n_iter_), "n_features": float(x.shape[1])}
        if val is not None and len(set(np.asarray(val["label"]).tolist())) > 1:
            from localroute.metrics import roc_auc

            out["val_auc"] = float(roc_auc(val["label"], self.raw_score(val)))
        return out

    def _fit(self, cls, x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None):
        p = self.params
        return cls(
            learning_rate=float(p.get("learning_rate", 0.06)),
            max_iter=int(p.get("max_iter", 300)),
            max_leaf_nodes=int(p.get("max_leaf_nodes", 15)),
            min_samples_leaf=int(p.get("min_samples_leaf", 40)),
            l2_regularization=float(p.get("l2", 1.0)),
            max_features=float(p.get("max_features", 0.5)),
            early_stopping=True,
            validation_fraction=0.15,
            n_iter_no_change=int(p.get("patience", 25)),
            random_state=self.seed,
        ).fit(
            x, y, sample_weight=w
        )  # w: per-row weights (several sources: pipelines.routers.balanced)

    def raw_score(self, batch: Batch) -> np.ndarray:
        if getattr(self, "model", None) is None:
            raise RouterError("gbt: not fitted")
        # the decision function on one thread (predict_proba would start an OpenMP team per
        # call: 47 ms for one row on a busy machine against ~0.3 ms), then the logistic link
        raw = self.model._raw_predict(self.features(batch), n_threads=1)[:, 0]
        return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(raw, np.float64)))

    def _save_state(self, path: Path) -> None:
        tasks = (getattr(self, "task_global", None), getattr(self, "task_table", None))
        (path / "gbt.pkl").write_bytes(pickle.dumps((self.model, tasks), protocol=5))

    def _load_state(self, path: Path) -> None:
        try:
            state = pickle.loads((path / "gbt.pkl").read_bytes())
            if not isinstance(state, tuple):  # written before task_feature: the model alone
                state = (state, (None, None))
            self.model, (self.task_global, self.task_table) = state
        except (pickle.UnpicklingError, AttributeError, ImportError, EOFError) as exc:
            raise ValueError(f"gbt.pkl: {exc}") from exc
