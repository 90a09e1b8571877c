"""The Meter protocol: a cumulative energy counter read at the start and end of a window.

Every meter is a counter (joules since some origin) with an update period, a scope (what it
covers: gpu_board, cpu_package, soc, ...) and a provenance (measured, estimated, absent). A window
shorter than the update period, or a counter that cannot be read, gives energy None, never 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Reading:
    """Energy over one window; `joules` is None when it was not (or could not be) measured."""

    joules: float | None
    seconds: float
    scope: str | None
    provenance: str  # measured, estimated, absent


@dataclass(frozen=True)
class Window:
    t: float  # time.perf_counter()
    counter_j: float | None


@runtime_checkable
class Meter(Protocol):
    scope: str | None
    provenance: str
    update_period_s: float

    def read(self) -> float | None:
        """The cumulative counter in joules, or None when no device answers."""
        ...


def begin(meter: Meter) -> Window:
    return Window(time.perf_counter(), meter.read())


def end(meter: Meter, window: Window) -> Reading:
    """Close a window; None (not 0) when it is shorter than the counter's update period."""
    t, counter = time.perf_counter(), meter.read()
    seconds = t - window.t
    if counter is None or window.counter_j is None:
        return Reading(None, seconds, meter.scope, "absent")
    if seconds < meter.update_period_s:
        return Reading(None, seconds, meter.scope, meter.provenance)
    return Reading(counter - window.counter_j, seconds, meter.scope, meter.provenance)


class NoMeter:
    """No energy measurement at all: every window reads None with provenance `absent`."""

    scope = None
    provenance = "absent"
    update_period_s = 0.0

    def read(self) -> float | None:
        return None
