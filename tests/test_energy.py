"""Energy meters and attribution: null (never 0) where nothing was measured, and attributed +
idle = the measured total, on hand-made intervals and on a real batch of the tiny model."""

from __future__ import annotations

import sys
import time

import pytest

from localroute.energy import NoMeter, begin, end, make_meter
from localroute.energy.attribution import attribute
from localroute.energy.estimated import EstimatedCpuMeter
from localroute.energy.sampler import Sampler
from localroute.engines import GenerationRequest, TokenSpan

pytestmark = pytest.mark.timeout(180)


def _busy(seconds: float) -> None:
    stop = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < stop:
        x += 1


def test_attribution_splits_by_tokens_and_keeps_idle_apart():
    # Counter at t=0,1,2,3: 10 J, 20 J, 5 J per interval.
    samples = [(0.0, 100.0), (1.0, 110.0), (2.0, 130.0), (3.0, 135.0)]
    spans = [
        [TokenSpan(0.0, 1.0, 30)],  # request 0: 30 tokens in [0, 1]
        [TokenSpan(0.0, 2.0, 20)],  # request 1: 10 in [0, 1], 10 in [1, 2]
    ]
    a = attribute(samples, spans)
    assert a.per_request == pytest.approx([7.5, 2.5 + 20.0])
    assert a.idle_j == pytest.approx(5.0)  # nothing ran in [2, 3]
    assert sum(a.per_request) + a.idle_j == pytest.approx(a.total_j) == pytest.approx(35.0)


def test_estimated_meter_counts_this_process_cpu_time():
    meter = EstimatedCpuMeter(tdp_w=100.0, cores=4)
    cpu0, w = time.process_time(), begin(meter)
    _busy(0.2)
    reading, cpu = end(meter, w), time.process_time() - cpu0
    assert reading.provenance == "estimated" and reading.scope.startswith("cpu_package")
    assert reading.joules == pytest.approx(100.0 * cpu / 4, rel=0.1)
    assert reading.joules > 0


def test_a_window_shorter_than_the_update_period_is_null_not_zero():
    meter = EstimatedCpuMeter(tdp_w=100.0, update_period_s=10.0)
    reading = end(meter, begin(meter))
    assert reading.joules is None and reading.provenance == "estimated"
    none = end(NoMeter(), begin(NoMeter()))
    assert none.joules is None and none.provenance == "absent" and none.scope is None


def test_zeus_without_a_device_reports_no_energy():
    pytest.importorskip("zeus")
    from localroute.energy.zeus_meter import ZeusMeter

    meter = ZeusMeter()
    if meter.available:
        pytest.skip(f"this machine has a metered device ({meter.scope})")
    reading = end(meter, begin(meter))
    assert reading.joules is None and reading.provenance == "absent"
    # auto falls back to the estimated meter, labelled as such, when a TDP is configured.
    assert make_meter("auto", tdp_w=65.0).provenance == "estimated"
    assert make_meter("auto").provenance == "absent"


def test_real_batch_attribution_sums_to_the_measured_total(tmp_path):
    from localroute.engines import make_engine
    from localroute.models.tiny import build_tiny_decoder

    engine = make_engine("transformers", str(build_tiny_decoder(tmp_path / "tiny")), device="cpu")
    meter = EstimatedCpuMeter(tdp_w=65.0, update_period_s=0.005)
    requests = [
        GenerationRequest([{"role": "user", "content": "q " * n}], max_tokens=12)
        for n in (2, 50, 200)
    ]
    with Sampler(meter) as sampler:
        gens = engine.generate(requests)
        _busy(0.05)  # work after the batch: the counter moves, no request runs
    a = attribute(sampler.samples, [g.spans for g in gens])
    measured = sampler.samples[-1][1] - sampler.samples[0][1]
    assert len(sampler.samples) > 3 and measured > 0
    assert sum(a.per_request) + a.idle_j == pytest.approx(measured, rel=1e-9)
    assert a.idle_j > 0 and all(e > 0 for e in a.per_request)
    # The longest prompt processed the most tokens, so it is charged the most.
    assert a.per_request[2] > a.per_request[0]


def _fake_nvml(counters_mj: list[float], supported: bool = True):
    import types

    def energy(handle):
        if not supported:
            raise RuntimeError("NVML: not supported")  # pynvml raises an NVMLError subclass
        return counters_mj[handle]

    return types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: len(counters_mj),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetTotalEnergyConsumption=energy,
        nvmlDeviceGetName=lambda handle: b"NVIDIA H100 80GB HBM3",
    )


def test_nvml_meter_sums_the_visible_gpus_counters(monkeypatch):
    """NVML's counter without Zeus: mJ -> J, only the GPUs CUDA_VISIBLE_DEVICES lists, and
    `auto` takes it where Zeus is absent and a GPU answers."""
    from localroute.energy.nvml_meter import NvmlMeter

    counters = [1000.0, 2000.0, 5000.0]
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(counters))
    monkeypatch.setitem(sys.modules, "zeus", None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    meter = NvmlMeter(update_period_s=0.0)
    assert meter.available and (meter.provenance, meter.scope) == ("measured", "gpu_board")
    assert meter.gpu_names == ["NVIDIA H100 80GB HBM3"] * 2
    window = begin(meter)
    counters[0] += 1500.0
    counters[1] += 9999.0  # not visible to this process: not counted
    counters[2] += 500.0
    reading = end(meter, window)
    assert reading.joules == pytest.approx(2.0) and reading.provenance == "measured"
    assert type(make_meter("auto", tdp_w=65.0)).__name__ == "NvmlMeter"


def test_nvml_meter_without_a_counter_reads_absent(monkeypatch):
    from localroute.energy.nvml_meter import NvmlMeter

    monkeypatch.setitem(sys.modules, "zeus", None)
    for fake in (None, _fake_nvml([1.0], supported=False)):  # no library; a board without it
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        meter = NvmlMeter()
        assert not meter.available and meter.provenance == "absent" and meter.scope is None
        reading = end(meter, begin(meter))
        assert reading.joules is None and reading.provenance == "absent"
        assert make_meter("auto", tdp_w=65.0).provenance == "estimated"
        assert make_meter("nvml").provenance == "absent"
