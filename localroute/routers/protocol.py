"""The Router protocol and its self-describing artifact directory.

A router maps a batch of requests (columns of features.py: text, context, prompt_words, ...)
to p = P(the local model's answer is not good enough), a calibrated probability:

    score(batch) = calibrator(raw_score(batch))

`raw_score` is the one method every router implements; `score` is the same for all of them: it
applies the calibrator fitted on held-out data (calibration.py, by training.fit), keeps one bad
row from failing its batch, and returns finite float64 in [0, 1]. A row whose score cannot be
computed gets the training base rate, and the router says so once (log and info["warnings"]).

An artifact directory holds `router.json` (format, name, params, threshold, alpha, calibrator, info,
and the fingerprint: a hash of that spec and of the weight files), `metrics.json`, and the
weight files the router lists in `state_files`. `localroute.routers.load_router(path)` gives back
a router that scores identically, `router.artifact_id` names it ("mlp-3f2a9c1d0b7e4a55").
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from localroute.routers import training
from localroute.routers.calibration import IDENTITY, Calibrator
from localroute.routers.errors import RouterError
from localroute.routers.features import Batch, n_rows, take

FORMAT = 2  # router.json layout: 2 = calibrated p and a fingerprint
log = logging.getLogger(__name__)


class Router(abc.ABC):
    name: ClassVar[str] = ""
    # Routers that read nothing but the labels or a coin need no training data.
    trainable: ClassVar[bool] = True
    # Raw scores that are already probabilities (frequencies) or fixed bounds: no calibrator.
    self_calibrated: ClassVar[bool] = False
    # The weight files `_save_state` writes: they and router.json make the fingerprint.
    state_files: ClassVar[tuple[str, ...]] = ()

    def __init__(self, seed: int = 0, **params: Any) -> None:
        self.seed = seed
        self.params = params
        self.threshold = 0.5  # p above it goes to the cloud; training.fit may replace it
        # eq. 11's fusion weight (1/s) chosen with the threshold on val (alpha.py): a query goes
        # local iff p - alpha (T_e - T_s) <= threshold; 0: the threshold applies to p alone
        self.alpha = 0.0
        self.info: dict[str, Any] = {}  # pair, source, calibration, train data, fingerprint
        self.calibrator: Calibrator | None = IDENTITY if self.self_calibrated else None
        self.fingerprint: str | None = None  # of the artifact it was saved as or loaded from

    # -- scoring
    @abc.abstractmethod
    def raw_score(self, batch: Batch) -> np.ndarray:
        """Uncalibrated P(needs cloud) for each row, in [0, 1] (what the calibrator maps)."""

    def learn(self, train: Batch, val: Batch | None) -> dict[str, float]:
        """Fit the router's own parameters in process (training.fit calls it); metrics."""
        return {}

    def fit(
        self, train: Batch, val: Batch | None = None, config=None, calibration=None
    ) -> dict[str, float]:
        """training.fit(self, ...): learn, calibrate p on val, optionally set the threshold."""
        return training.fit(self, train, val, config=config, calibration=calibration)

    def score(self, batch: Batch) -> np.ndarray:
        """Calibrated P(needs cloud) for each row of the batch, as finite float64 in [0, 1]."""
        if self.calibrator is None:
            raise RouterError(f"{self.name}: not fitted (fit it, or load a trained artifact)")
        raw = self.uncalibrated(batch)
        bad = ~np.isfinite(raw)
        p = self.calibrator(np.where(bad, 0.5, raw))
        if bad.any():
            p[bad] = float(self.info.get("base_rate", 0.5))
        # 12 decimals: the last bits of a BLAS product never depend on a row's batch position
        return np.clip(np.round(p, 12), 0.0, 1.0)

    def uncalibrated(self, batch: Batch) -> np.ndarray:
        """raw_score as float64, NaN for a row that fails when its batch-mates do not."""
        n = n_rows(batch)
        if n == 0:
            return np.zeros(0)
        try:
            raw = self._raw(batch, n)
        except RouterError:
            raise
        except Exception as exc:
            if n == 1:
                raise
            raw = np.full(n, np.nan)
            for i in range(n):
                try:
                    raw[i] = self._raw(take(batch, np.array([i])), 1)[0]
                except Exception:  # noqa: BLE001 - that row alone: it gets the base rate
                    continue
            if not np.isfinite(raw).any():
                raise exc
        if not np.isfinite(raw).all():
            self.warn_once("unscored_rows", "rows it could not score get the training base rate")
        return raw

    def _raw(self, batch: Batch, n: int) -> np.ndarray:
        raw = np.asarray(self.raw_score(batch), dtype=np.float64).reshape(-1)
        if raw.shape != (n,):
            raise RouterError(f"{self.name}: {raw.shape[0]} scores for {n} rows")
        return np.round(raw, 9)

    def warn_once(self, key: str, message: str) -> None:
        """Log `message` once per router and record it under info["warnings"][key]."""
        warnings = self.info.setdefault("warnings", {})
        if key not in warnings:
            warnings[key] = message
            log.warning("router %s: %s", self.name, message)

    # -- artifacts
    @property
    def artifact_id(self) -> str | None:
        """`<name>-<fingerprint>` once saved or loaded, else None."""
        return f"{self.name}-{self.fingerprint}" if self.fingerprint else None

    def spec(self) -> dict[str, Any]:
        """What router.json records, without its fingerprint."""
        if self.calibrator is None:
            raise RouterError(f"{self.name}: not fitted, nothing to save")
        info = {k: v for k, v in self.info.items() if k not in ("fingerprint", "warnings")}
        return {
            "format": FORMAT,
            "router": self.name,
            "seed": self.seed,
            "params": self.params,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "calibrator": self.calibrator.to_dict(),
            "info": info,
        }

    def save(self, path: str | Path, metrics: dict | None = None) -> Path:
        path = Path(path)
        spec = self.spec()
        path.mkdir(parents=True, exist_ok=True)
        if metrics is not None:
            (path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        self._save_state(path)
        spec["fingerprint"] = artifact_fingerprint(spec, path, self.state_files)
        (path / "router.json").write_text(json.dumps(spec, indent=2, default=_jsonable) + "\n")
        self.fingerprint = self.info["fingerprint"] = spec["fingerprint"]
        return path

    @classmethod
    def from_spec(cls, spec: dict[str, Any], path: Path) -> Router:
        """The router an artifact describes (load_router reads the spec and picks the class)."""
        where = path / "router.json"
        if "calibrator" not in spec or "fingerprint" not in spec:
            raise RouterError(
                f"{where}: an artifact of an older localroute, without a probability calibrator "
                "or fingerprint (its scores are not calibrated probabilities); retrain it with "
                "`localroute train`"
            )
        try:
            router = cls(seed=int(spec.get("seed", 0)), **spec.get("params", {}))
            router.threshold = float(spec.get("threshold", 0.5))
            router.alpha = float(spec.get("alpha", 0.0))  # artifacts before alpha: p alone
            router.info = dict(spec.get("info", {}))
            router.calibrator = Calibrator.from_dict(spec["calibrator"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RouterError(f"{where}: malformed ({exc})") from exc
        expected = artifact_fingerprint(
            {k: v for k, v in spec.items() if k != "fingerprint"}, path, cls.state_files
        )
        if spec["fingerprint"] != expected:
            raise RouterError(
                f"{where}: fingerprint {spec['fingerprint']} does not match the artifact's "
                f"contents ({expected}): it changed after it was written"
            )
        try:
            router._load_state(path)
        except (OSError, KeyError, ValueError) as exc:
            raise RouterError(f"{path}: unreadable router weights ({exc})") from exc
        router.fingerprint = router.info["fingerprint"] = spec["fingerprint"]
        return router

    def _save_state(self, path: Path) -> None:  # noqa: B027 - stateless routers save nothing
        pass

    def _load_state(self, path: Path) -> None:  # noqa: B027
        pass


def artifact_fingerprint(spec: dict[str, Any], path: Path, state_files: tuple[str, ...]) -> str:
    """sha256 of the spec (canonical JSON) and of each weight file, first 16 hex digits."""
    h = hashlib.sha256()
    canonical = json.loads(json.dumps(spec, default=_jsonable))  # as router.json reads back
    h.update(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(state_files):
        h.update(b"\x00" + name.encode() + b"\x00")
        file = path / name
        if not file.is_file():
            raise RouterError(f"{path}: missing router weights {name}")
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
