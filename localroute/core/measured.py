"""Measured per-token times of a local model, read from the outcome rows ``localroute profile``
wrote. A measured figure applies only to the model and hardware it was measured on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from localroute.errors import ConfigError


@dataclass(frozen=True)
class MeasuredProfile:
    """Per-token times (and energy where metered or estimated) of one model on one machine, from
    outcome rows with provenance ``measured`` (``localroute profile`` / the demo's profile stage).
    ``energy_provenance`` says what the energy figure is: ``measured`` (a hardware counter) or
    ``estimated`` (the estimated meter: a TDP share x the process's CPU time)."""

    model: str
    hardware: str
    n_rows: int
    prefill_s_per_token: float | None
    decode_s_per_token: float | None
    energy_per_output_token_j: float | None
    params_b: float | None
    path: str
    energy_provenance: str | None = None

    @property
    def label(self) -> str:
        return f"{self.model} on {self.hardware} ({self.n_rows} measured rows in {self.path})"


def load_measured(path: str | Path) -> MeasuredProfile | None:
    """The measured model with the most rows under ``path`` (Parquet files, OUTCOME_SCHEMA);
    None when there are no usable measured rows."""
    import pyarrow.parquet as pq

    root = Path(path)
    if not root.exists():
        raise ConfigError(f"evaluate.measured: {root} does not exist")
    files = [root] if root.is_file() else sorted(root.rglob("*.parquet"))
    tables = []
    for f in files:
        try:
            t = pq.read_table(f)
        except (OSError, pa.ArrowInvalid) as exc:
            raise ConfigError(
                f"evaluate.measured: {f} is not a readable Parquet file ({exc})"
            ) from None
        need = {"model", "hardware", "tpot_s", "ttft_s", "tokens_in", "tokens_out", "provenance"}
        if not need <= set(t.column_names):
            continue
        cols = sorted(
            need | ({"energy_j", "energy_provenance", "model_size_b"} & set(t.schema.names))
        )
        tables.append(t.select(cols))
    if not tables:
        return None
    t = pa.concat_tables(tables, promote_options="permissive")
    t = t.filter(pc.and_(pc.equal(t["provenance"], "measured"), pc.is_valid(t["tpot_s"])))
    if t.num_rows == 0:
        return None
    key = [
        f"{m}\x00{h}"
        for m, h in zip(t["model"].to_pylist(), t["hardware"].to_pylist(), strict=True)
    ]
    keys, counts = np.unique(np.array(key, dtype=object), return_counts=True)
    best = str(keys[np.argmax(counts)])
    mask = np.array([k == best for k in key])
    t = t.filter(pa.array(mask))
    model, hardware = best.split("\x00")
    tpot = t["tpot_s"].to_numpy(zero_copy_only=False).astype(float)
    ttft = np.asarray(t["ttft_s"].to_numpy(zero_copy_only=False), dtype=float)
    tin = np.asarray(t["tokens_in"].to_numpy(zero_copy_only=False), dtype=float)
    ok = np.isfinite(ttft) & (tin > 0)
    prefill = float(np.median(ttft[ok] / tin[ok])) if ok.any() else None
    energy, energy_provenance = None, None
    if "energy_j" in t.column_names and "energy_provenance" in t.column_names:
        e = np.asarray(t["energy_j"].to_numpy(zero_copy_only=False), dtype=float)
        tout = np.asarray(t["tokens_out"].to_numpy(zero_copy_only=False), dtype=float)
        kinds = np.array(t["energy_provenance"].to_pylist(), dtype=object)
        for kind in ("measured", "estimated"):  # a counter's figure first, else the estimate
            ok = (kinds == kind) & np.isfinite(e) & (tout > 0)
            if ok.any():
                energy, energy_provenance = float(np.median(e[ok] / tout[ok])), kind
                break
    size = None
    if "model_size_b" in t.column_names:
        sizes = [s for s in t["model_size_b"].to_pylist() if s is not None]
        size = float(sizes[0]) if sizes else None
    return MeasuredProfile(
        model=model,
        hardware=hardware or "unknown hardware",
        n_rows=t.num_rows,
        prefill_s_per_token=prefill,
        decode_s_per_token=float(np.nanmedian(tpot)),
        energy_per_output_token_j=energy,
        params_b=size,
        path=str(root),
        energy_provenance=energy_provenance,
    )


def measured_outcomes(profile: MeasuredProfile) -> pa.Table:
    """The scored outcome rows of the measured model (source, query_id, turn, model, score), to
    pair with published outcomes of a cloud model on the same queries."""
    import pyarrow.parquet as pq

    root = Path(profile.path)
    files = [root] if root.is_file() else sorted(root.rglob("*.parquet"))
    cols = ["source", "query_id", "turn", "model", "score", "provenance"]
    t = pa.concat_tables(
        [pq.read_table(f, columns=cols) for f in files], promote_options="permissive"
    )
    keep = pc.and_(pc.equal(t["model"], profile.model), pc.equal(t["provenance"], "measured"))
    return t.filter(pc.and_(keep, pc.is_valid(t["score"]))).drop_columns(["provenance"])
