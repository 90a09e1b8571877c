"""Sample a meter's counter on a background thread while a batch runs.

The samples bound the intervals that `attribution.attribute` splits among requests. The first and
last samples are taken on the caller's thread at entry and exit, so they bracket the batch.
"""

from __future__ import annotations

import threading
import time

from localroute.energy.base import Meter


class Sampler:
    def __init__(self, meter: Meter, period_s: float | None = None):
        self.meter = meter
        self.period_s = max(period_s or meter.update_period_s, 0.005)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _take(self) -> None:
        value = self.meter.read()
        if value is not None:
            self.samples.append((time.perf_counter(), value))

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self._take()

    def __enter__(self) -> Sampler:
        self._take()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._take()
        self.samples.sort()

    @property
    def seconds(self) -> float:
        return self.samples[-1][0] - self.samples[0][0] if len(self.samples) > 1 else 0.0
