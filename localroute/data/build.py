"""Build the query/outcome/model tables into a directory of Parquet files, atomically.

Layout of a build: `{queries,outcomes,models}/<source>.parquet`, `manifest.json`, `NOTICE`.
Everything is written to a temporary sibling directory first and renamed into place, so a failed
build leaves the previous output untouched and nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from localroute.data.paths import SHIPPED_DIR, find_shared_data
from localroute.data.schema import TABLES, validate
from localroute.data.sources import SOURCES, SOURCES_BY_NAME, get_source
from localroute.errors import DataError

KINDS = tuple(TABLES)
SHIPPED = "shipped"  # as source_dir: use the build shipped in the package, even if raw data exists


def is_shipped(source_dir: str | Path | None) -> bool:
    """The keyword "shipped", also as a config resolves it against its own folder
    (`<config folder>/shipped`, a folder that does not exist)."""
    if source_dir is None:
        return False
    path = Path(source_dir)
    return str(source_dir) == SHIPPED or (path.name == SHIPPED and not path.exists())


def build(
    out: Path,
    source_dir: str | Path | None = None,
    sources: list[str] | None = None,
    shippable_only: bool = False,
    log=print,
) -> dict:
    """Load the sources and write them under `out`; returns the manifest.

    Reads the raw files when a source directory is found (see `find_shared_data`), else (or when
    `source_dir` is "shipped") copies the build shipped inside the package.
    """
    root = None if is_shipped(source_dir) else find_shared_data(source_dir)
    # Only shippable sources exist without the raw data.
    only_shippable = shippable_only or root is None
    names = sources or [s.name for s in SOURCES if s.shippable or not only_shippable]
    selected = [get_source(n) for n in names]
    if shippable_only:
        bad = [s.name for s in selected if not s.shippable]
        if bad:
            raise DataError(f"source(s) {bad} may not be shipped (see SOURCES.md)")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for kind in KINDS:
            (tmp / kind).mkdir()
        counts = {}
        for source in selected:
            if root is not None:
                log(f"loading {source.name} from {root / source.folder}")
                tables = source.load(root)
                parts = {
                    "queries": tables.queries,
                    "outcomes": tables.outcomes,
                    "models": tables.models,
                }
                for kind, table in parts.items():
                    pq.write_table(
                        table,
                        tmp / kind / f"{source.name}.parquet",
                        compression="zstd",
                        compression_level=9,
                    )
            else:
                log(f"copying {source.name} from the shipped build {SHIPPED_DIR}")
                _copy_shipped(source.name, tmp)
            counts[source.name] = {
                kind: pq.ParquetFile(tmp / kind / f"{source.name}.parquet").metadata.num_rows
                for kind in KINDS
            }
        manifest = {
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "origin": str(root) if root is not None else "shipped",
            "sources": {
                s.name: {
                    **counts[s.name],
                    "from": s.origin,
                    "licence": s.licence,
                    "shippable": s.shippable,
                }
                for s in selected
            },
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if root is not None:
            (tmp / "NOTICE").write_text(notice(root, [s.name for s in selected]))
        else:
            shutil.copy2(SHIPPED_DIR / "NOTICE", tmp / "NOTICE")
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _copy_shipped(name: str, dest: Path) -> None:
    for kind in KINDS:
        src = SHIPPED_DIR / kind / f"{name}.parquet"
        if not src.is_file():
            raise DataError(
                f"{src}: source {name!r} is not in the shipped build; point --source-dir "
                f"(or $LOCALROUTE_SHARED_DATA) at the raw data"
            )
        shutil.copy2(src, dest / kind / src.name)


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename tmp to out; an existing out is moved aside first and removed only after."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def notice(root: Path, names: list[str]) -> str:
    """Name each source, its commit and licence, followed by the licence texts it came with."""
    lines = [
        "This data was converted by localroute's own loaders (localroute/data/sources.py) from",
        "public repositories; each source keeps its licence:",
        "",
    ]
    folders = []
    for name in names:
        s = SOURCES_BY_NAME[name]
        lines.append(f"- {s.name}: {s.origin} (licence: {s.licence})")
        if s.folder not in folders:
            folders.append(s.folder)
    lines += ["", "Per-query outcomes from these sources carry provenance 'published'.", ""]
    for folder in folders:
        licence = root / folder / "LICENSE"
        if licence.is_file():
            lines += [
                f"==== {folder}/LICENSE ====",
                licence.read_text(encoding="utf-8").strip(),
                "",
            ]
    return "\n".join(lines) + "\n"


def read_table(data_dir: str | Path, kind: str, sources: list[str] | None = None) -> pa.Table:
    """One table kind of a build, all sources (or the ones named) concatenated and validated."""
    if kind not in TABLES:
        raise DataError(f"unknown table {kind!r}; known: {', '.join(KINDS)}")
    folder = Path(data_dir) / kind
    if not folder.is_dir():
        raise DataError(f"{folder}: not a localroute data build (run `localroute data build`)")
    available = {p.stem: p for p in sorted(folder.glob("*.parquet"))}
    wanted = sources or list(available)
    missing = [s for s in wanted if s not in available]
    if missing:
        raise DataError(f"{folder}: no {kind} for source(s) {missing}; have {list(available)}")
    tables = []
    for name in wanted:
        try:
            table = pq.read_table(available[name], schema=TABLES[kind])
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{available[name]}: unreadable ({exc})") from exc
        validate(table, TABLES[kind], str(available[name]))
        tables.append(table)
    return pa.concat_tables(tables) if tables else TABLES[kind].empty_table()


def summary(data_dir: str | Path) -> dict:
    """Row counts per source and table kind, read from the Parquet footers."""
    data_dir = Path(data_dir)
    if not (data_dir / "queries").is_dir():
        raise DataError(f"{data_dir}: not a localroute data build (run `localroute data build`)")
    result: dict[str, dict[str, int]] = {}
    for kind in ("queries", "outcomes"):
        result[kind] = {}
        for path in sorted((data_dir / kind).glob("*.parquet")):
            try:
                result[kind][path.stem] = pq.ParquetFile(path).metadata.num_rows
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataError(f"{path}: unreadable ({exc})") from exc
    return result
