"""Per-model latency and energy calibrated from the ML.ENERGY leaderboard (../shared/data/mlenergy).

The leaderboard publishes, per model and serving configuration (GPU model and count, vLLM
``max_num_seqs``), the median inter-token latency, the energy per output token and the output-length
distribution measured on real chat traffic (``lm-arena-chat``). Nothing in this project's outcome
table holds a per-query latency or energy for the published models, so where nothing was measured
the cost model takes its per-token time (gamma) and energy per token from the nearest leaderboard
entry and labels them ``calibrated``, naming the stand-in model and configuration.

What one figure means:

* ``s_per_token`` = the configuration's median inter-token latency (decode, one request's view at
  that batch). The leaderboard has no time-to-first-token, so prefill uses the same gamma unless
  something measured says otherwise (the seed's own convention: one gamma per model, eq. 1 and 5).
* ``energy_per_output_token_j`` = GPU energy per generated token with the prefill of the chat
  prompts amortised into it (energy per request / output tokens), scope ``gpu_board`` x num_gpus.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from localroute.errors import ConfigError

__all__ = ["Calibration", "MlEnergy", "load_mlenergy"]


@dataclass(frozen=True)
class Calibration:
    """One leaderboard configuration turned into cost-model figures, with where they came from."""

    model_id: str  # the leaderboard model that stands in
    task: str
    gpu_model: str
    num_gpus: int
    max_num_seqs: int
    s_per_token: float  # median inter-token latency, seconds
    energy_per_output_token_j: float
    mean_output_tokens: float
    total_params_b: float | None
    active_params_b: float | None
    file: str

    @property
    def source(self) -> str:
        return (
            f"ML.ENERGY leaderboard ({self.file}): {self.model_id} on {self.num_gpus}x"
            f"{self.gpu_model}, max_num_seqs={self.max_num_seqs}, task {self.task}: median ITL "
            f"{self.s_per_token * 1e3:.2f} ms/token, {self.energy_per_output_token_j:.3f} J per "
            f"output token, mean output {self.mean_output_tokens:.0f} tokens"
        )


class MlEnergy:
    """The leaderboard's per-model files under one directory, queried by model id."""

    def __init__(self, root: str | Path, task: str = "lm-arena-chat") -> None:
        self.root = Path(root)
        self.task = task
        models = self.root / "models"
        if not models.is_dir():
            raise ConfigError(f"{self.root}: not an ML.ENERGY data directory (no models/)")
        self.docs: dict[str, dict[str, Any]] = {}
        for path in sorted(models.glob(f"*__{task}.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(f"{path}: unreadable ML.ENERGY file ({exc})") from exc
            doc["_file"] = f"mlenergy/models/{path.name}"
            self.docs[doc["model_id"]] = doc

    def models(self) -> list[str]:
        return sorted(self.docs)

    def find(self, model: str) -> str | None:
        """The leaderboard id for ``model``: exact, or the same name after the org (any case)."""
        if model in self.docs:
            return model
        short = model.rsplit("/", 1)[-1].lower()
        for mid in self.docs:
            if mid.rsplit("/", 1)[-1].lower() == short:
                return mid
        return None

    def nearest_by_size(self, params_b: float, *, dense_only: bool = True) -> str | None:
        """The leaderboard model whose total size is nearest to ``params_b`` on a log scale."""
        best, dist = None, math.inf
        for mid, doc in self.docs.items():
            size = doc.get("total_params_billions")
            if not size:
                continue
            if dense_only and doc.get("architecture") == "MoE":
                continue
            if "FP8" in mid:  # prefer the bf16 serving of a model
                continue
            d = abs(math.log(size / params_b))
            if d < dist:
                best, dist = mid, d
        return best

    def calibrate(self, model_id: str, max_num_seqs: int = 8, gpu: str = "B200") -> Calibration:
        """The configuration of ``model_id`` on ``gpu`` (any GPU if it has none there) with the
        fewest GPUs, then max_num_seqs nearest ``max_num_seqs`` (8 = the smallest batch
        published, a single user's view; larger = a shared server)."""
        if model_id not in self.docs:
            known = ", ".join(self.models())
            raise ConfigError(f"no ML.ENERGY entry for {model_id!r}; known: {known}")
        doc = self.docs[model_id]
        configs = doc.get("configurations") or []
        if not configs:
            raise ConfigError(f"{doc['_file']}: no configurations")
        c = min(
            configs,
            key=lambda c: (
                c.get("gpu_model") != gpu,
                c["num_gpus"],
                abs(math.log(c["max_num_seqs"] / max_num_seqs)),
            ),
        )
        return Calibration(
            model_id=model_id,
            task=self.task,
            gpu_model=str(c["gpu_model"]),
            num_gpus=int(c["num_gpus"]),
            max_num_seqs=int(c["max_num_seqs"]),
            s_per_token=float(c["median_itl_ms"]) / 1e3,
            energy_per_output_token_j=float(c["energy_per_token_joules"]),
            mean_output_tokens=float(c["avg_output_len"]),
            total_params_b=doc.get("total_params_billions"),
            active_params_b=doc.get("activated_params_billions"),
            file=doc["_file"],
        )


@lru_cache(maxsize=4)
def load_mlenergy(root: str, task: str = "lm-arena-chat") -> MlEnergy:
    return MlEnergy(root, task)
