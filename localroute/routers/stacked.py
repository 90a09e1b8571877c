"""A stacked router: a logistic regression on its members' calibrated scores, fitted on val.

Each member (gbt, knn and mlp on MiniLM token vectors and task-prior by default; any trainable
router, with its parameters) is fitted on the training split and calibrated on the validation
split by training.fit; the stacker then learns, on that same validation split, how much to trust
each member: p = sigmoid(w . logit(p_members) + b), with a mild L2 penalty (a handful of weights
on thousands of rows). The members are saved inside the artifact (members/<i>-<name>), each
with its own fingerprint, which stack.json records, so the stack's fingerprint covers them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from localroute.routers.calibration import _logit
from localroute.routers.errors import RouterError
from localroute.routers.features import Batch
from localroute.routers.protocol import Router

# task-prior reads the request's task where it has one (offline data, a task header); a served
# request without one gets its global prior, a constant the other members' weights outrank
DEFAULT_MEMBERS = (
    {"name": "gbt", "embedder": "static"},
    {"name": "knn", "embedder": "static"},
    {"name": "mlp", "embedder": "static"},
    {"name": "task-prior"},
)


def _members(params: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for m in params.get("members", DEFAULT_MEMBERS):
        m = {"name": m} if isinstance(m, str) else dict(m)
        if m.get("name") in (None, "stack"):
            raise ValueError(f"stack: a member needs a router name other than stack, got {m}")
        out.append(m)
    return out


class StackRouter(Router):
    name = "stack"
    state_files = ("stack.json",)

    def __init__(self, seed: int = 0, **params) -> None:
        super().__init__(seed, **params)
        self.spec_members = _members(params)

    def learn(self, train: Batch, val: Batch | None) -> dict[str, float]:
        from sklearn.linear_model import LogisticRegression

        from localroute.metrics import roc_auc
        from localroute.routers.members import make_member
        from localroute.routers.training import fit

        if val is None or len(set(np.asarray(val["label"]).tolist())) < 2:
            raise RouterError("stack: needs a validation split with both labels")
        self.members = []
        out: dict[str, float] = {}
        for m in self.spec_members:
            member = make_member(
                m["name"], seed=self.seed, **{k: v for k, v in m.items() if k != "name"}
            )
            member.info.update(
                {k: self.info[k] for k in ("source", "local", "cloud", "models") if k in self.info}
            )
            fit(member, train, val)
            self.members.append(member)
        z = self._z(val)
        y = np.asarray(val["label"], np.int64)
        lr = LogisticRegression(C=float(self.params.get("C", 1.0)), max_iter=1000).fit(z, y)
        self.w = lr.coef_[0].astype(np.float64)
        self.b = float(lr.intercept_[0])
        for m, w in zip(self.members, self.w, strict=True):
            out[f"w_{m.name}"] = float(w)
            out[f"val_auc_{m.name}"] = float(roc_auc(y, m.score(val)))
        return out

    def _z(self, batch: Batch) -> np.ndarray:
        return np.stack([_logit(m.score(batch)) for m in self.members], axis=1)

    def raw_score(self, batch: Batch) -> np.ndarray:
        if getattr(self, "members", None) is None:
            raise RouterError("stack: not fitted")
        z = self._z(batch) @ self.w + self.b
        return 0.5 * (1.0 + np.tanh(0.5 * z))

    def _save_state(self, path: Path) -> None:
        dirs = []
        for i, m in enumerate(self.members):
            d = f"members/{i}-{m.name}"
            m.save(path / d)
            dirs.append({"dir": d, "router": m.name, "fingerprint": m.fingerprint})
        state = {"w": self.w.tolist(), "b": self.b, "members": dirs}
        (path / "stack.json").write_text(json.dumps(state, indent=1))

    def _load_state(self, path: Path) -> None:
        from localroute.routers.members import load_artifact

        state = json.loads((path / "stack.json").read_text())
        self.w, self.b = np.asarray(state["w"], np.float64), float(state["b"])
        self.members = []
        for d in state["members"]:
            member = load_artifact(path / d["dir"])
            if member.fingerprint != d["fingerprint"]:
                raise ValueError(f"member {d['dir']} is not the one the stack was fitted with")
            self.members.append(member)
