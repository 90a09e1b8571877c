"""Energy meters: one protocol (base.Meter), picked by name; see base.py for the rules.

`auto` takes a Zeus-backed measured meter when the `energy` extra is installed and a device
answers, else NVML's GPU counter (nvml_meter; nvidia-ml-py is a core dependency) when an NVIDIA
GPU answers, else the estimated one (when a TDP is configured), else none.
"""

from __future__ import annotations

from localroute.energy.base import Meter, NoMeter, Reading, Window, begin, end
from localroute.energy.estimated import EstimatedCpuMeter

METERS = ("auto", "zeus", "nvml", "estimated", "none")


def make_meter(
    kind: str = "auto", tdp_w: float | None = None, tdp_cores: int | None = None
) -> Meter:
    if kind not in METERS:
        raise ValueError(f"unknown meter {kind!r}; known: {', '.join(METERS)}")
    if kind in ("auto", "zeus"):
        try:
            from localroute.energy.zeus_meter import ZeusMeter

            meter = ZeusMeter()
            if meter.available or kind == "zeus":
                return meter
        except ImportError:
            if kind == "zeus":
                return NoMeter()
    if kind in ("auto", "nvml"):
        from localroute.energy.nvml_meter import NvmlMeter

        meter = NvmlMeter()
        if meter.available or kind == "nvml":
            return meter
    if kind in ("auto", "estimated") and tdp_w:
        return EstimatedCpuMeter(tdp_w, tdp_cores)
    return NoMeter()


__all__ = ["METERS", "Meter", "NoMeter", "Reading", "Window", "begin", "end", "make_meter"]
