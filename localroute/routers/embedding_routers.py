"""Routers on MiniLM sentence embeddings: kNN, an MLP, and RouteLLM-style matrix factorisation.

They embed the prompt (the current user turn; a long one by its head and tail, embedders.py)
and score in float64, so a query's p does not depend on its position in a batch.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from localroute.metrics import roc_auc
from localroute.routers.embedders import EMBEDDERS
from localroute.routers.embedders import embed as _embed
from localroute.routers.errors import RouterError
from localroute.routers.features import Batch, texts
from localroute.routers.protocol import Router

SIM_STEPS = 1e6  # kNN similarities are compared in steps of 1e-6 (float noise is far below)


class _Embedded(Router):
    """Embeds text with the router's `embedder` parameter (embedders.EMBEDDERS; the class's
    `default_embedder` when not given)."""

    default_embedder: str = "minilm"
    extra_embedders: tuple[str, ...] = ()

    def __init__(self, seed: int = 0, **params) -> None:
        super().__init__(seed, **params)
        kind = str(params.get("embedder", self.default_embedder))
        if kind not in EMBEDDERS + self.extra_embedders:
            known = ", ".join(EMBEDDERS + self.extra_embedders)
            raise ValueError(f"unknown embedder {kind!r}: {known}")

    def embed(self, batch: Batch) -> np.ndarray:
        """The batch's prompts as unit vectors, float64."""
        kind = str(self.params.get("embedder", self.default_embedder))
        return _embed(texts(batch), kind=kind).astype(np.float64)


def _labels(train: Batch) -> np.ndarray:
    y = np.asarray(train["label"], np.float32)
    if y.size == 0:
        raise RouterError("empty training split")
    return y


class KnnRouter(_Embedded):
    """p = the similarity-weighted share of the k nearest training queries that needed the cloud."""

    name = "knn"
    state_files = ("knn.npz",)
    K_GRID = (10, 25, 50, 100, 200)

    def learn(self, train: Batch, val: Batch | None) -> dict[str, float]:
        self.y = _labels(train).astype(np.float64)
        self.x = self.embed(train).astype(np.float32)
        self.k = int(self.params.get("k", 25))
        if "k" in self.params or val is None or len(set(np.asarray(val["label"]).tolist())) < 2:
            return {}
        # no k given: take the one with the best validation AUC
        sims = self._sims(val)
        aucs = {k: roc_auc(val["label"], self._vote(sims, k)) for k in self.K_GRID}
        self.k = max(aucs, key=aucs.get)
        return {"k": float(self.k), "val_auc": float(aucs[self.k])}

    def raw_score(self, batch: Batch) -> np.ndarray:
        return self._vote(self._sims(batch), self.k)

    def _sims(self, batch: Batch) -> np.ndarray:
        """Cosine similarities to the training queries, in integer steps of 1/SIM_STEPS."""
        sims = self.embed(batch) @ self.x.astype(np.float64).T
        return np.rint(sims * SIM_STEPS).astype(np.int64)

    def _vote(self, steps: np.ndarray, k: int) -> np.ndarray:
        import torch

        n = steps.shape[1]
        # one integer key per neighbour: similarity first, then the lower training index, so a
        # tie is broken the same way whatever the batch (torch.topk: ~10x np.argpartition here)
        keys = steps * n + (n - 1 - np.arange(n))
        _, idx = torch.topk(torch.from_numpy(keys), min(k, n), dim=1)
        idx = idx.numpy()
        w = np.clip(np.take_along_axis(steps, idx, 1) / SIM_STEPS, 1e-6, None)
        return (w * self.y[idx]).sum(1) / w.sum(1)

    def _save_state(self, path: Path) -> None:
        np.savez_compressed(path / "knn.npz", x=self.x, y=self.y, k=self.k)

    def _load_state(self, path: Path) -> None:
        state = np.load(path / "knn.npz")
        self.x, self.y, self.k = state["x"], state["y"].astype(np.float64), int(state["k"])


class _TorchHead(_Embedded):
    """Shared fitting for the small torch heads on embeddings: full-batch Adam, early stopping."""

    def _module(self):
        raise NotImplementedError

    def _fit_module(self, x, y, x_val, y_val, loss_fn) -> dict[str, float]:
        import torch

        torch.manual_seed(self.seed)
        self.module, self._exact = self._module(), None
        opt = torch.optim.AdamW(
            self.module.parameters(),
            lr=float(self.params.get("lr", 3e-3)),
            weight_decay=float(self.params.get("weight_decay", 1e-4)),
        )
        epochs, patience = int(self.params.get("epochs", 200)), int(self.params.get("patience", 20))
        best, best_state, stale, epochs_run = -1.0, None, 0, 0
        for epoch in range(epochs):
            epochs_run = epoch + 1
            self.module.train()
            opt.zero_grad()
            loss = loss_fn(x, y)
            loss.backward()
            opt.step()
            if x_val is None:
                continue
            auc = (
                roc_auc(y_val, self._predict(x_val, exact=False))
                if len(set(y_val.tolist())) > 1
                else 0.5
            )
            if auc > best + 1e-4:
                best, stale = auc, 0
                best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            else:
                stale += 1
                if stale >= patience:
                    break
        if best_state is not None:
            self.module.load_state_dict(best_state)
        return {"val_auc": best, "epochs": float(epochs_run)} if x_val is not None else {}

    def _predict(self, x, exact: bool = True) -> np.ndarray:
        """sigmoid(logits); exact: in float64 (a float64 copy of the module), batch-invariant."""
        import torch

        self.module.eval()
        module, dtype = self.module, torch.float32
        if exact:
            if getattr(self, "_exact", None) is None:
                self._exact = copy.deepcopy(self.module).double().eval()
            module, dtype = self._exact, torch.float64
        with torch.no_grad():
            logits = self._logits(torch.as_tensor(np.asarray(x), dtype=dtype), module)
            return torch.sigmoid(logits).numpy().astype(np.float64)

    def _save_state(self, path: Path) -> None:
        import torch

        torch.save(self.module.state_dict(), path / "head.pt")

    def _load_state(self, path: Path) -> None:
        import torch

        self.module, self._exact = self._module(), None
        self.module.load_state_dict(torch.load(path / "head.pt", weights_only=True))
        self.module.eval()


class MlpRouter(_TorchHead):
    """A one-hidden-layer classifier of P(needs cloud) on the query embedding."""

    name = "mlp"
    state_files = ("head.pt",)

    def _module(self):
        import torch.nn as nn

        hidden = int(self.params.get("hidden", 128))
        return nn.Sequential(
            nn.Linear(384, hidden),
            nn.GELU(),
            nn.Dropout(float(self.params.get("dropout", 0.1))),
            nn.Linear(hidden, 1),
        )

    def _logits(self, x, module=None):
        return (module or self.module)(x).squeeze(-1)

    def learn(self, train: Batch, val: Batch | None) -> dict[str, float]:
        import torch

        y = torch.as_tensor(_labels(train))
        x = torch.as_tensor(self.embed(train).astype(np.float32))
        x_val = _val_x(self, val)
        y_val = np.asarray(val["label"]) if x_val is not None else None
        if "weight" in train:  # per-row weights (several sources): they balance the classes
            rows = torch.as_tensor(np.asarray(train["weight"], np.float32))
            bce = torch.nn.BCEWithLogitsLoss(weight=rows)
        else:
            pos = float(y.mean())
            weight = torch.tensor((1 - pos) / max(pos, 1e-3))  # balance the classes
            bce = torch.nn.BCEWithLogitsLoss(pos_weight=weight)
        return self._fit_module(x, y, x_val, y_val, lambda xb, yb: bce(self._logits(xb), yb))

    def raw_score(self, batch: Batch) -> np.ndarray:
        return self._predict(self.embed(batch))


class MatrixFactorisationRouter(_TorchHead):
    """RouteLLM's matrix factorisation: a learned vector per model scores a projected query.

    s(m, q) = w . (v_m * (W q)); P(cloud better) = sigmoid(s(cloud, q) - s(local, q)). Trained on
    every pair of models the source scores (column `all_scores`, models in info["models"]), not
    only the routed pair, which is where it gains over a plain classifier.
    """

    name = "mf"
    state_files = ("head.pt",)

    def _module(self):
        import torch
        import torch.nn as nn

        dim, n_models = int(self.params.get("dim", 64)), len(self.info["models"])

        class MF(nn.Module):
            def __init__(self):
                super().__init__()
                self.models = nn.Embedding(n_models, dim)
                self.proj = nn.Linear(384, dim)
                self.out = nn.Linear(dim, 1, bias=False)

            def forward(self, x, a, b):  # s(a, q) - s(b, q)
                q = self.proj(x)
                return self.out(q * (self.models(a) - self.models(b))).squeeze(-1)

        torch.manual_seed(self.seed)
        return MF()

    def _pair(self) -> tuple[int, int]:
        models = self.info["models"]
        return models.index(self.info["cloud"]), models.index(self.info["local"])

    def _logits(self, x, module=None):
        import torch

        cloud, local = self._pair()
        n = x.shape[0]
        return (module or self.module)(x, torch.full((n,), cloud), torch.full((n,), local))

    def learn(self, train: Batch, val: Batch | None) -> dict[str, float]:
        import torch

        _labels(train)
        if "all_scores" in train:
            scores = np.asarray(train["all_scores"], np.float32)
        else:  # only the pair is known
            local = self.info.setdefault("local", "local")
            cloud = self.info.setdefault("cloud", "cloud")
            self.info.setdefault("models", [local, cloud])
            scores = np.stack([train["q_local"], train["q_cloud"]], 1).astype(np.float32)
        if "models" not in self.info or scores.shape[1] != len(self.info["models"]):
            raise RouterError("mf: info['models'] must name the columns of all_scores")
        x = torch.as_tensor(self.embed(train).astype(np.float32))
        # every ordered model pair (a, b) where a scored strictly higher than b on a query
        rows, a_idx, b_idx = [], [], []
        m = scores.shape[1]
        for a in range(m):
            for b in range(m):
                if a == b:
                    continue
                better = np.nan_to_num(scores[:, a], nan=-1) > np.nan_to_num(scores[:, b], nan=2)
                idx = np.nonzero(better)[0]
                rows.append(idx)
                a_idx.append(np.full(idx.size, a))
                b_idx.append(np.full(idx.size, b))
        rows, a_t, b_t = (torch.as_tensor(np.concatenate(v)) for v in (rows, a_idx, b_idx))
        if rows.numel() == 0:
            raise RouterError("mf: no query where one model beat another")
        bce = torch.nn.BCEWithLogitsLoss()

        # symmetric pairs: (a beats b) -> label 1 for (a, b)
        def loss(xb, _):
            logits = self.module(xb[rows], a_t, b_t)
            return bce(logits, torch.ones_like(logits))

        x_val = _val_x(self, val)
        y_val = np.asarray(val["label"]) if x_val is not None else None
        return self._fit_module(x, None, x_val, y_val, loss)

    def raw_score(self, batch: Batch) -> np.ndarray:
        return self._predict(self.embed(batch))


def _val_x(router: _Embedded, val: Batch | None) -> np.ndarray | None:
    if val is None or len(val["text"]) == 0:
        return None
    return router.embed(val).astype(np.float32)
