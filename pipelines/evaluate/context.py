"""What every experiment shares: the resolved figures, the router artifact and a log, typed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localroute.errors import ConfigError
from pipelines.evaluate.config import EvaluateConfig

if TYPE_CHECKING:
    import pyarrow as pa

    from localroute.core.latency import LatencyPreset
    from localroute.core.measured import MeasuredProfile
    from localroute.core.mlenergy import MlEnergy
    from localroute.core.prices import Prices
    from localroute.core.sides import LinkProfile
    from localroute.routers import Router

Log = Callable[[str], Any]


@dataclass(frozen=True)
class RouterArtifact:
    """The learned router every experiment evaluates: the directory `localroute train` wrote."""

    path: Path
    router: Router
    name: str
    fingerprint: str | None
    source: str | None  # what it was trained on
    local: str | None
    cloud: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "router": self.name,
            "fingerprint": self.fingerprint,
            "trained_on": {"source": self.source, "local": self.local, "cloud": self.cloud},
            "threshold": getattr(self.router, "threshold", None),
        }


def load_artifact(path: str | Path) -> RouterArtifact:
    """Load a router artifact directory; its fingerprint may be in router.info or an attribute."""
    from localroute.routers import RouterError, load_router

    p = Path(path)
    try:
        router = load_router(p)
    except RouterError as exc:
        raise ConfigError(f"evaluate.router_artifact: {exc}") from None
    info = getattr(router, "info", None) or {}
    fp = getattr(router, "fingerprint", None) or info.get("fingerprint")  # either, or neither
    return RouterArtifact(
        path=p.resolve(),
        router=router,
        name=str(getattr(router, "name", "") or info.get("router", "?")),
        fingerprint=fp if isinstance(fp, str) else None,
        source=info.get("source"),
        local=info.get("local"),
        cloud=info.get("cloud"),
    )


@dataclass
class EvalContext:
    """Inputs resolved once per run, shared read-only by the experiments (notes are appended)."""

    cfg: EvaluateConfig
    seed: int
    data_dir: Path
    available: frozenset[str]  # sources with outcome rows in the build
    link: LinkProfile
    table1: LatencyPreset | None
    mlenergy: MlEnergy | None
    measured: MeasuredProfile | None
    measured_rows: pa.Table | None  # the measured model's scored outcome rows
    prices: Prices
    catalogue: dict[str, dict[str, Any]]
    artifact: RouterArtifact | None
    router_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployed: Any = None  # pipelines.evaluate.deployed.DeployedSpec: what serve deploys
    log: Log = print
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # experiment key -> notes

    def note(self, text: str, log: bool = True) -> None:
        self.notes.append(text)
        if log:
            self.log(f"   note: {text}")


def _catalogue(data_dir: Path, sources: list[str]) -> dict[str, dict[str, Any]]:
    from localroute.data.build import read_table

    t = read_table(data_dir, "models", sources)
    out: dict[str, dict[str, Any]] = {}
    for row in t.to_pylist():
        cur = out.setdefault(row["model"], {})
        for k in ("size_b", "input_usd_per_m", "output_usd_per_m"):
            if cur.get(k) is None and row.get(k) is not None:
                cur[k] = row[k]
    return out


def _mlenergy(ev: EvaluateConfig) -> MlEnergy | None:
    from localroute.core.mlenergy import load_mlenergy
    from localroute.data.paths import find_shared_data

    if ev.mlenergy_dir == "none":
        return None
    root = Path(ev.mlenergy_dir) if ev.mlenergy_dir else None
    if root is None:
        shared = find_shared_data(None)
        root = shared / "mlenergy" if shared is not None else None
    if root is not None and (root / "models").is_dir():
        return load_mlenergy(str(root))
    if ev.mlenergy_dir:
        raise ConfigError(f"evaluate.mlenergy_dir: {root} has no ML.ENERGY models/ folder")
    return None


def make_context(
    ev: EvaluateConfig,
    seed: int,
    data_dir: Path,
    measured_dir: Path | None,
    log: Log,
    artifact: RouterArtifact | None = None,
    router_params: dict[str, dict[str, Any]] | None = None,
    deployed: Any = None,
) -> EvalContext:
    from localroute.core.measured import load_measured, measured_outcomes
    from localroute.core.prices import load_prices
    from localroute.core.profiles import (
        get_link,
        get_preset,
        load_latency_presets,
        load_link_profiles,
    )

    links_file = ev.links_file
    link = get_link(ev.link, load_link_profiles(links_file))  # unknown name: error lists known
    table1 = None
    if ev.table1_preset is not None:
        table1 = get_preset(ev.table1_preset, load_latency_presets(links_file))
    measured = None
    mpath = (
        measured_dir if measured_dir is not None else (Path(ev.measured) if ev.measured else None)
    )
    if mpath is not None:
        measured = load_measured(mpath)
        if measured is None:
            log(
                f"   note: no measured rows with per-token times under {mpath}; "
                "using calibrated figures"
            )
    available = frozenset(p.stem for p in (data_dir / "outcomes").glob("*.parquet"))
    return EvalContext(
        cfg=ev,
        seed=seed,
        data_dir=data_dir,
        available=available,
        link=link,
        table1=table1,
        mlenergy=_mlenergy(ev),
        measured=measured,
        measured_rows=measured_outcomes(measured) if measured is not None else None,
        prices=load_prices(ev.prices_file),
        catalogue=_catalogue(data_dir, sorted(available)),
        artifact=artifact,
        router_params=dict(router_params or {}),
        deployed=deployed,
        log=log,
    )
