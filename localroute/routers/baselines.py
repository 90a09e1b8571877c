"""Routers that learn nothing about the text: the bounds and the task prior to beat."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from localroute.routers.errors import RouterError
from localroute.routers.features import Batch, clean_text, n_rows
from localroute.routers.protocol import Router


class _Untrained(Router):
    """Needs no training data; its scores are bounds or a coin, not estimates to calibrate."""

    trainable = False
    self_calibrated = True


class RandomRouter(_Untrained):
    """A uniform draw per query, seeded by its text: the same query always gets the same p."""

    name = "random"

    def raw_score(self, batch: Batch) -> np.ndarray:
        out = np.empty(n_rows(batch))
        for i, text in enumerate(batch["text"]):
            key = f"{self.seed}\x00{clean_text(text)}".encode()
            digest = hashlib.blake2b(key, digest_size=8).digest()
            out[i] = int.from_bytes(digest, "big") / 2**64
        return out


class AlwaysLocal(_Untrained):
    name = "always-local"

    def raw_score(self, batch: Batch) -> np.ndarray:
        return np.zeros(n_rows(batch))


class AlwaysCloud(_Untrained):
    name = "always-cloud"

    def raw_score(self, batch: Batch) -> np.ndarray:
        return np.ones(n_rows(batch))


class Oracle(_Untrained):
    """Reads the labels it is asked to predict: the upper bound no real router reaches."""

    name = "oracle"

    def raw_score(self, batch: Batch) -> np.ndarray:
        if "label" not in batch:
            raise RouterError("the oracle router needs the true labels (column 'label')")
        # Break ties towards the bigger quality gain, so the oracle curve is the best ordering.
        gain = np.asarray(batch.get("q_cloud", 0.0), float) - np.asarray(
            batch.get("q_local", 0.0), float
        )
        return np.clip(0.5 * np.asarray(batch["label"], float) + 0.25 + 0.25 * gain, 0.0, 1.0)


class TaskPrior(Router):
    """The training split's mean label per task; the global mean for a task it never saw, and
    for a request that names no task (a served request without the task header)."""

    name = "task-prior"
    self_calibrated = True  # frequencies on the training split
    state_files = ("task_prior.json",)

    def __init__(self, seed: int = 0, **params) -> None:
        super().__init__(seed, **params)
        self.calibrator = None  # a frequency table, but none until fitted

    def learn(self, train: Batch, val: Batch | None) -> dict[str, float]:
        labels = np.asarray(train["label"], float)
        if labels.size == 0:
            raise RouterError("task-prior: empty training split")
        self.global_mean = float(labels.mean())
        tasks = np.array([clean_text(t) for t in train["task"]], dtype=object)
        self.table = {str(t): float(labels[tasks == t].mean()) for t in np.unique(tasks)}
        return {"n_tasks": float(len(self.table))}

    def raw_score(self, batch: Batch) -> np.ndarray:
        if "task" not in batch:
            self.warn_once("no_task", "no task column: every row gets the global prior")
            return np.full(n_rows(batch), self.global_mean)
        return np.array([self.table.get(clean_text(t), self.global_mean) for t in batch["task"]])

    def _save_state(self, path: Path) -> None:
        state = {"global_mean": self.global_mean, "table": self.table}
        (path / "task_prior.json").write_text(json.dumps(state, indent=1))

    def _load_state(self, path: Path) -> None:
        state = json.loads((path / "task_prior.json").read_text())
        self.global_mean, self.table = state["global_mean"], state["table"]
