"""A measured meter over NVML's total-energy counter, for NVIDIA GPUs without Zeus.

nvidia-ml-py (`pynvml`) is a core dependency, while Zeus is an optional extra: a GPU machine with
only the driver and PyTorch can still measure. The counter (millijoules since the driver loaded,
Volta and later) is summed over the GPUs this process sees (CUDA_VISIBLE_DEVICES where it lists
indices, else all). No NVML, no GPU or no counter: it reads None, energy absent, never 0.
"""

from __future__ import annotations

import os


def _visible(count: int) -> list[int]:
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return list(range(count))
    parts = [p.strip() for p in listed.split(",") if p.strip()]
    if all(p.isdigit() for p in parts):
        return [int(p) for p in parts if int(p) < count]
    return list(range(count))  # UUIDs or MIG names: meter every board rather than guess


class NvmlMeter:
    provenance = "measured"
    scope = "gpu_board"

    def __init__(self, gpu_indices: list[int] | None = None, update_period_s: float = 0.1):
        # NVML refreshes its total-energy counter about every 100 ms (20-100 ms by board).
        self.update_period_s = update_period_s
        self.gpu_names: list[str] = []
        self._handles: list = []
        try:
            import pynvml

            pynvml.nvmlInit()
            indices = _visible(pynvml.nvmlDeviceGetCount()) if gpu_indices is None else gpu_indices
            for i in indices:
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # raises where unsupported
                name = pynvml.nvmlDeviceGetName(handle)
                self.gpu_names.append(name.decode() if isinstance(name, bytes) else str(name))
                self._handles.append(handle)
            self._nvml = pynvml
        except Exception:  # no library, no driver, no device, or a board without the counter
            self._handles, self.gpu_names = [], []
        if not self._handles:
            self.provenance, self.scope = "absent", None

    @property
    def available(self) -> bool:
        return bool(self._handles)

    def read(self) -> float | None:
        if not self._handles:
            return None
        get = self._nvml.nvmlDeviceGetTotalEnergyConsumption
        return sum(get(h) for h in self._handles) / 1e3
