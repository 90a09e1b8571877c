"""The vocabulary every other module shares: sides, provenance, figures, links and per-token times.

Conventions (seed 001's notation; one encoding everywhere):

* ``p`` = P(the query needs the cloud model); a label of 1 means the local answer was not good
  enough; a decision of 1 (``CLOUD``) sends the query to the cloud. So ``p``, labels and
  decisions all read "1 = cloud", and ``side_name`` turns a decision into "local"/"cloud".
* Token counts are floats (the paper counts whitespace words). Times are seconds. Link bandwidth
  is in tokens/s (see :func:`mbit_s_to_tokens_s`).
* A missing figure is NaN (``None`` becomes NaN on input), never 0, and NaN propagates.
* Every figure carries one provenance from :data:`PROVENANCES`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from localroute.errors import ConfigError

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

LOCAL = 0
"""Decision value for the small local model (the paper's side *s*)."""
CLOUD = 1
"""Decision value for the large cloud/edge model (the paper's side *e*); also label 1."""
SIDE_NAMES = ("local", "cloud")


def side_name(decision: int) -> str:
    """ "local" or "cloud" for a decision value."""
    return SIDE_NAMES[int(decision)]


Provenance = Literal["measured", "calibrated", "published", "estimated", "absent"]
PROVENANCES: tuple[str, ...] = ("measured", "calibrated", "published", "estimated", "absent")
"""measured: our own measurement of this model on this hardware; calibrated: derived from
published measurements of a stand-in (e.g. ML.ENERGY); published: taken from a cited source;
estimated: an assumption or judgement; absent: nobody knows (the value is None/NaN)."""

DEFAULT_BYTES_PER_TOKEN = 4.0
"""Bytes on the wire per token: English BPE tokens average about 4 characters and ASCII is 1
byte per character in UTF-8. Framing, TLS and SSE envelopes raise it; it is a parameter
everywhere because it moves B by that factor."""


class CostConfigError(ConfigError, ValueError):
    """A cost-model value or profile is invalid; the message names the profile and field."""


class UnknownProfileError(CostConfigError, KeyError):
    """A named profile does not exist; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the message; show it as written
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Figure:
    """One number and where it came from; ``value`` None means absent (never 0)."""

    value: float | None
    provenance: str
    source: str = ""

    def __post_init__(self) -> None:
        if self.provenance not in PROVENANCES:
            raise ValueError(f"provenance must be one of {PROVENANCES}, got {self.provenance!r}")
        if self.value is None and self.provenance != "absent":
            raise ValueError("an absent value must have provenance 'absent'")

    @property
    def f(self) -> float:
        return math.nan if self.value is None else float(self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "provenance": self.provenance, "source": self.source}


ABSENT = Figure(None, "absent", "")


# --------------------------------------------------------------------------- number checks


def as_float(x: ArrayLike | None) -> FloatArray:
    """Float array view; ``None`` (also inside lists) becomes NaN so missing never reads as 0."""
    return np.asarray(x, dtype=np.float64)


def as_switch(x: ArrayLike) -> BoolArray:
    """Coerce a switch flag (bool or 0/1) to bool; any other value is a caller bug."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        return arr
    num = np.asarray(arr, dtype=np.float64)
    if not np.all((num == 0) | (num == 1)):
        raise ValueError("switch flags must be boolean or 0/1")
    return num == 1


def nonneg(x: Any, name: str) -> Any:
    """``x`` as a number (a float stays a float, anything else becomes a float array) that may
    be NaN but not negative: a negative count is a caller bug. Scalars stay scalars so the
    per-request path pays no numpy overhead."""
    if type(x) is float or type(x) is int:
        if x < 0:
            raise ValueError(f"{name} must be >= 0 (or NaN when unknown)")
        return float(x)
    arr = as_float(x)
    if np.any(arr < 0):  # NaN compares False, so missing values pass through
        raise ValueError(f"{name} must be >= 0 (or NaN when unknown)")
    return arr


def check_value(value: Any, where: str, *, strict: bool, allow_nan: bool = False) -> float:
    """Validate one scalar parameter; ``strict`` means > 0, else >= 0. Errors name ``where``."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise CostConfigError(f"{where} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if math.isnan(v):
        if allow_nan:
            return v
        raise CostConfigError(f"{where} must be a number, got NaN")
    if math.isinf(v):
        raise CostConfigError(f"{where} must be finite, got {value!r}")
    if strict and v <= 0:
        raise CostConfigError(f"{where} must be > 0, got {value!r}")
    if not strict and v < 0:
        raise CostConfigError(f"{where} must be >= 0, got {value!r}")
    return v


def check_provenance(value: Any, where: str) -> None:
    if value not in PROVENANCES:
        raise CostConfigError(f"{where} must be one of {', '.join(PROVENANCES)}; got {value!r}")


# --------------------------------------------------------------------------- units


def mbit_s_to_tokens_s(
    mbit_s: ArrayLike, bytes_per_token: float = DEFAULT_BYTES_PER_TOKEN
) -> FloatArray:
    """Link rate in Mbit/s (SI: 1e6 bit/s, as speed tests report) to tokens/s.

    The paper measures B in tokens/s "by assuming an average number of bits per token"; this is
    that conversion: tokens/s = Mbit/s * 1e6 / (8 * bytes_per_token). It ignores protocol
    overhead beyond what ``bytes_per_token`` absorbs.
    """
    if not bytes_per_token > 0:
        raise ValueError(f"bytes_per_token must be > 0, got {bytes_per_token!r}")
    return as_float(mbit_s) * 1e6 / (8.0 * bytes_per_token)


def tokens_s_to_mbit_s(
    tokens_s: ArrayLike, bytes_per_token: float = DEFAULT_BYTES_PER_TOKEN
) -> FloatArray:
    """Inverse of :func:`mbit_s_to_tokens_s`, to show a tokens/s figure as a familiar link rate."""
    if not bytes_per_token > 0:
        raise ValueError(f"bytes_per_token must be > 0, got {bytes_per_token!r}")
    return as_float(tokens_s) * 8.0 * bytes_per_token / 1e6


# --------------------------------------------------------------------------- parameter records


@dataclass(frozen=True)
class LinkProfile:
    """One device-to-cloud link: bandwidth B (tokens/s) and fixed overhead delta (s), eq. 3.

    ``bandwidth_tokens_s`` is the download rate (the paper's single B). ``uplink_tokens_s``, when
    set, prices the upload of prompt and context instead: real access links are asymmetric (5G
    uplink is ~10x slower than downlink) and the upload term grows with the context. Left unset,
    eq. 3 is exactly the paper's. ``overhead_s`` stands for message-size-independent delay
    (propagation, handshakes); the profiles in ``configs/links.yaml`` set it to one median RTT,
    i.e. a warm connection (a fresh TLS connection costs 1-2 more RTTs).
    """

    name: str
    bandwidth_tokens_s: float
    overhead_s: float
    source: str = ""
    provenance: Provenance = "estimated"
    uplink_tokens_s: float | None = None
    rtt_s: float | None = None
    bytes_per_token: float | None = None
    bandwidth_mbit_s: float | None = None
    uplink_mbit_s: float | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        where = f"links.{self.name}"
        check_value(self.bandwidth_tokens_s, f"{where}.bandwidth_tokens_s", strict=True)
        check_value(self.overhead_s, f"{where}.overhead_s", strict=False)
        for name in ("uplink_tokens_s", "bytes_per_token", "bandwidth_mbit_s", "uplink_mbit_s"):
            value = getattr(self, name)
            if value is not None:
                check_value(value, f"{where}.{name}", strict=True)
        if self.rtt_s is not None:
            check_value(self.rtt_s, f"{where}.rtt_s", strict=False)
        check_provenance(self.provenance, f"{where}.provenance")

    @property
    def upload_tokens_s(self) -> float:
        """Rate used for the upload term of eq. 3 (the paper's B unless an uplink is given)."""
        return self.bandwidth_tokens_s if self.uplink_tokens_s is None else self.uplink_tokens_s


@dataclass(frozen=True)
class SideLatency:
    """Per-token compute time gamma and mean response length of one side (local or cloud).

    The paper uses one gamma for prefill (eq. 1) and decode (eq. 5). Prefill is batched and far
    faster per token than decode on real hardware, so each can be set apart; unset, both fall
    back to ``s_per_token`` and the formulas are the paper's. ``mean_response_tokens`` (L_r bar)
    is a workload property and may be NaN until a workload is chosen; totals then come out NaN.
    """

    name: str
    s_per_token: float
    mean_response_tokens: float = math.nan
    prefill_s_per_token: float | None = None
    decode_s_per_token: float | None = None
    provenance: Provenance = "estimated"
    response_provenance: Provenance = "estimated"
    source: str = ""

    def __post_init__(self) -> None:
        where = f"side {self.name!r}"
        check_value(self.s_per_token, f"{where}: s_per_token", strict=True)
        for name in ("prefill_s_per_token", "decode_s_per_token"):
            value = getattr(self, name)
            if value is not None:
                check_value(value, f"{where}: {name}", strict=True)
        check_value(
            self.mean_response_tokens,
            f"{where}: mean_response_tokens",
            strict=False,
            allow_nan=True,
        )
        check_provenance(self.provenance, f"{where}: provenance")
        check_provenance(self.response_provenance, f"{where}: response_provenance")

    @property
    def prefill(self) -> float:
        """gamma for eq. 1 (prefill of prompt and re-prefilled context)."""
        return self.s_per_token if self.prefill_s_per_token is None else self.prefill_s_per_token

    @property
    def decode(self) -> float:
        """gamma for eq. 5 (decode of the response)."""
        return self.s_per_token if self.decode_s_per_token is None else self.decode_s_per_token

    def with_response(self, tokens: float, provenance: Provenance) -> SideLatency:
        """Copy with L_r bar set, e.g. from a benchmark table or the measured outcome table."""
        return dataclasses.replace(
            self, mean_response_tokens=tokens, response_provenance=provenance
        )
