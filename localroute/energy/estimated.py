"""An estimated meter: TDP x CPU utilisation of this process, integrated over time.

Where no counter exists (no RAPL, no GPU) the energy of a process is estimated as
`tdp_w x (process CPU seconds / logical cores)`: the package's rated power shared by the cores
this process kept busy. It ignores idle power and frequency scaling, so it is labelled
`estimated`, and its scope says what it covers.
"""

from __future__ import annotations

import os
import time


class EstimatedCpuMeter:
    provenance = "estimated"
    scope = "cpu_package:process_cpu_time_x_tdp"

    def __init__(self, tdp_w: float, cores: int | None = None, update_period_s: float = 0.01):
        if tdp_w <= 0:
            raise ValueError(f"tdp_w must be > 0, got {tdp_w}")
        self.tdp_w = tdp_w
        self.cores = cores or os.cpu_count() or 1
        # Linux accounts CPU time at scheduler-tick granularity; shorter windows are noise.
        self.update_period_s = update_period_s

    def read(self) -> float:
        return time.process_time() * self.tdp_w / self.cores
