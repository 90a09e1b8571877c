"""A measured meter over Zeus's device counters: NVML, ROCm (amdsmi), RAPL and Apple silicon.

Zeus (the `energy` extra) finds the devices; this meter sums their cumulative energy counters.
With no device answering it reads None: energy absent, never 0.
"""

from __future__ import annotations

import contextlib


class ZeusMeter:
    provenance = "measured"

    def __init__(self, gpu_indices: list[int] | None = None, update_period_s: float = 0.1):
        from zeus.device import get_cpus, get_gpus, get_soc

        # NVML refreshes its total-energy counter about every 100 ms (20-100 ms by board).
        self.update_period_s = update_period_s
        self._gpus = self._cpus = self._soc = None
        try:
            gpus = get_gpus()
            idx = range(len(gpus)) if gpu_indices is None else gpu_indices
            self._gpu_idx = [i for i in idx if gpus.supports_get_total_energy_consumption(i)]
            self._gpus = gpus if self._gpu_idx else None
        except Exception:
            self._gpu_idx = []
        try:
            cpus = get_cpus()
            self._cpus = cpus if len(cpus) else None
        except Exception:
            pass
        if self._gpus is None and self._cpus is None:
            with contextlib.suppress(Exception):
                self._soc = get_soc()
        scopes = (["gpu_board"] if self._gpus else []) + (["cpu_package"] if self._cpus else [])
        scopes += ["soc"] if self._soc else []
        self.scope = "+".join(scopes) or None
        if not scopes:
            self.provenance = "absent"

    @property
    def available(self) -> bool:
        return self.scope is not None

    def read(self) -> float | None:
        if not self.available:
            return None
        total = 0.0
        if self._gpus:
            total += sum(self._gpus.get_total_energy_consumption(i) for i in self._gpu_idx) / 1e3
        if self._cpus:
            for i in range(len(self._cpus)):
                m = self._cpus.get_total_energy_consumption(i)
                total += (m.cpu_mj + (m.dram_mj or 0.0)) / 1e3
        if self._soc:
            m = self._soc.get_total_energy_consumption()
            # Whole-SoC parts only; per-core and per-cluster fields are inside cpu_total_mj.
            parts = ("cpu_total_mj", "gpu_mj", "gpu_sram_mj", "ane_mj", "dram_mj")
            total += sum(getattr(m, p, None) or 0 for p in parts) / 1e3
        return total
