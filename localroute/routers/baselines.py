"""Routers that learn nothing about the text: the bounds and the task prior to beat."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from localroute.routers.base import Router, RouterError, register
from localroute.routers.examples import Batch


class _Untrained(Router):
    """Needs no training data: fitting is a no-op."""

    trainable = False

    def fit(self, train: Batch, val: Batch | None = None) -> dict[str, float]:
        return {}


@register("random")
class RandomRouter(_Untrained):
    """A uniform draw per query, seeded by its text: the same query always gets the same p."""

    def score(self, batch: Batch) -> np.ndarray:
        out = np.empty(len(batch["text"]))
        for i, text in enumerate(batch["text"]):
            digest = hashlib.blake2b(f"{self.seed}\x00{text}".encode(), digest_size=8).digest()
            out[i] = int.from_bytes(digest, "big") / 2**64
        return out


@register("always-local")
class AlwaysLocal(_Untrained):
    def score(self, batch: Batch) -> np.ndarray:
        return np.zeros(len(batch["text"]))


@register("always-cloud")
class AlwaysCloud(_Untrained):
    def score(self, batch: Batch) -> np.ndarray:
        return np.ones(len(batch["text"]))


@register("oracle")
class Oracle(_Untrained):
    """Reads the labels it is asked to predict: the upper bound no real router reaches."""

    def score(self, batch: Batch) -> np.ndarray:
        if "label" not in batch:
            raise RouterError("the oracle router needs the true labels (column 'label')")
        # Break ties towards the bigger quality gain, so the oracle curve is the best ordering.
        gain = np.asarray(batch.get("q_cloud", 0.0), float) - np.asarray(
            batch.get("q_local", 0.0), float
        )
        return np.clip(0.5 * np.asarray(batch["label"], float) + 0.25 + 0.25 * gain, 0.0, 1.0)


@register("task-prior")
class TaskPrior(Router):
    """The training split's mean label per task; the global mean for a task it never saw."""

    def fit(self, train: Batch, val: Batch | None = None) -> dict[str, float]:
        labels = np.asarray(train["label"], float)
        if labels.size == 0:
            raise RouterError("task-prior: empty training split")
        self.global_mean = float(labels.mean())
        tasks = np.asarray(train["task"]).astype(str)
        self.table = {t: float(labels[tasks == t].mean()) for t in np.unique(tasks)}
        return {"n_tasks": float(len(self.table))}

    def score(self, batch: Batch) -> np.ndarray:
        tasks = np.asarray(batch["task"]).astype(str)
        return np.array([self.table.get(t, self.global_mean) for t in tasks])

    def _save_state(self, path: Path) -> None:
        state = {"global_mean": self.global_mean, "table": self.table}
        (path / "task_prior.json").write_text(json.dumps(state, indent=1))

    def _load_state(self, path: Path) -> None:
        state = json.loads((path / "task_prior.json").read_text())
        self.global_mean, self.table = state["global_mean"], state["table"]
