"""Where the raw public data and the shipped build are found."""

from __future__ import annotations

import os
from pathlib import Path

from localroute.errors import DataError

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
ENV_VAR = "LOCALROUTE_SHARED_DATA"


def find_shared_data(explicit: str | Path | None = None) -> Path | None:
    """The raw data folder: an explicit path, $LOCALROUTE_SHARED_DATA, or ../shared/data.

    An explicit path that does not exist is an error; when nothing is found, None (the caller
    falls back to the shipped build).
    """
    if explicit is not None:
        path = Path(explicit).expanduser().resolve()
        if not path.is_dir():
            raise DataError(f"{path}: source data directory not found")
        return path
    if os.environ.get(ENV_VAR):
        return find_shared_data(os.environ[ENV_VAR])
    repo = Path(__file__).resolve().parents[2]
    for base in (Path.cwd(), repo):
        candidate = (base / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return None
