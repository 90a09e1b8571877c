"""What a deployment learns while it serves: live latency estimates, the local queue, and the
tracker that holds a target cloud share. The server feeds them measurements; the report's
as-deployed replay feeds them the same way, so both decide through the same state.

* :class:`LiveEstimates`: EWMAs of the cloud RTT and bandwidth, the local engine's seconds per
  token and each side's answer length. An estimate that stops being fed **decays back to the
  prior** (half-life ``decay_half_life_s``): a side that is no longer chosen cannot keep an
  estimate that keeps it unchosen (lock-in). Decay rather than exploration: it costs no user a
  deliberately worse route, and a side whose estimate came back to the prior gets traffic again
  and is measured anew.
* :class:`LocalLoad`: requests in flight on the local side as an expected queueing wait, from
  measured service times.
* :class:`QuantileTracker`: theta as the target-share quantile of recent load-free fused scores
  (:func:`localroute.core.policy.theta_for_share`, the rule training uses too).

Pure Python (no Ray); thread-safe where the ingress scores in threads.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from localroute.core.latency import LatencyModel
from localroute.core.policy import theta_for_share

Clock = Callable[[], float]


class Ewma:
    """An exponentially weighted mean of positive finite observations, with its last update time."""

    def __init__(self, weight: float, clock: Clock = time.monotonic) -> None:
        self.weight = weight
        self.value: float | None = None
        self.n = 0
        self.updated = 0.0
        self._clock = clock

    def update(self, x: float) -> None:
        if not math.isfinite(x) or x <= 0:
            return
        self.value = x if self.value is None else self.weight * x + (1 - self.weight) * self.value
        self.n += 1
        self.updated = self._clock()


def decayed(prior: float, e: Ewma, min_samples: int, half_life_s: float | None, now: float):
    """The estimate pulled back toward ``prior`` by its age: prior + (value - prior) 2^(-age/h).
    None while the estimate rests on fewer than ``min_samples`` observations."""
    if e.value is None or e.n < min_samples:
        return None
    if not half_life_s or not math.isfinite(prior):
        return e.value
    w = 0.5 ** (max(0.0, now - e.updated) / half_life_s)
    return prior + (e.value - prior) * w


@dataclasses.dataclass(frozen=True)
class EstimateSnapshot:
    """The live figures a decision used (None: the prior's), as headers report them and the
    replay takes them back."""

    rtt_s: float | None = None
    cloud_tokens_s: float | None = None
    local_prefill_s: float | None = None
    local_decode_s: float | None = None
    local_response_tokens: float | None = None
    cloud_response_tokens: float | None = None

    def to_header(self) -> str:
        return ",".join(
            f"{f.name}={'' if v is None else repr(float(v))}"
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        )

    @classmethod
    def from_header(cls, text: str) -> EstimateSnapshot:
        values = {}
        for part in filter(None, text.split(",")):
            k, _, v = part.partition("=")
            values[k] = float(v) if v else None
        return cls(**values)

    def apply(self, prior: LatencyModel) -> LatencyModel:
        """The prior with these figures swapped in (unmeasured ones stay the prior's)."""
        link, local, cloud = prior.link, prior.local, prior.cloud
        if self.rtt_s is not None:
            link = dataclasses.replace(link, overhead_s=self.rtt_s, rtt_s=self.rtt_s)
        if self.cloud_tokens_s is not None:
            up = None
            if link.uplink_tokens_s is not None:
                up = self.cloud_tokens_s * link.uplink_tokens_s / link.bandwidth_tokens_s
            link = dataclasses.replace(
                link, bandwidth_tokens_s=self.cloud_tokens_s, uplink_tokens_s=up
            )
        if self.local_decode_s is not None or self.local_prefill_s is not None:
            local = dataclasses.replace(
                local,
                decode_s_per_token=self.local_decode_s or local.decode,
                prefill_s_per_token=self.local_prefill_s or local.prefill,
            )
        if self.local_response_tokens is not None:
            local = local.with_response(self.local_response_tokens, "measured")
        if self.cloud_response_tokens is not None:
            cloud = cloud.with_response(self.cloud_response_tokens, "measured")
        if link is prior.link and local is prior.local and cloud is prior.cloud:
            return prior
        return dataclasses.replace(prior, link=link, local=local, cloud=cloud)


class LiveEstimates:
    """EWMAs of what the cost model needs, fed by measurements of real traffic and probes.

    A measured value replaces the prior's once it rests on ``min_samples`` observations, and
    decays back to the prior while it is not refreshed (``decay_half_life_s``; None: never)."""

    def __init__(
        self,
        weight: float,
        min_transfer_bytes: int = 2048,
        min_samples: int = 1,
        decay_half_life_s: float | None = 60.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.min_samples = max(1, int(min_samples))
        self.half_life_s = decay_half_life_s
        self.clock = clock
        self.rtt_s = Ewma(weight, clock)  # to the cloud API, from probes: the link's delta
        self.cloud_bytes_s = Ewma(weight, clock)  # response bytes / transfer time: the link's B
        self.local_decode_s = Ewma(weight, clock)  # local seconds per generated token: gamma_s
        self.local_prefill_s = Ewma(weight, clock)  # local seconds per prompt token
        self.local_tokens = Ewma(weight, clock)  # local answer length (tokens)
        self.cloud_tokens = Ewma(weight, clock)  # cloud answer length (tokens)
        self.min_transfer_bytes = min_transfer_bytes
        self.last_probe = 0.0
        self._lock = threading.Lock()

    def observe_rtt(self, seconds: float) -> None:
        with self._lock:
            self.rtt_s.update(seconds)

    def observe_cloud(self, n_bytes: int | None, seconds: float | None, tokens_out: int | None):
        with self._lock:
            if n_bytes and seconds and n_bytes >= self.min_transfer_bytes and seconds > 0:
                self.cloud_bytes_s.update(n_bytes / seconds)
            if tokens_out:
                self.cloud_tokens.update(float(tokens_out))

    def observe_local(
        self,
        tokens_in: int | None,
        ttft_s: float | None,
        tokens_out: int | None,
        decode_s: float | None,
        complete: bool = True,
    ) -> None:
        """A local answer's timings; its length counts only when ``complete`` (not cut)."""
        with self._lock:
            if tokens_in and ttft_s:
                self.local_prefill_s.update(ttft_s / tokens_in)
            if tokens_out and tokens_out > 1 and decode_s:
                self.local_decode_s.update(decode_s / (tokens_out - 1))
            if tokens_out and complete:
                self.local_tokens.update(float(tokens_out))

    def observe_answer(self, side: str, stats: dict[str, Any]) -> None:
        """One served answer's measurements (a side's reply stats). An answer cut by its
        max_tokens says nothing about how long an answer is: its length is not counted."""
        complete = stats.get("finish_reason") != "length"
        if side == "local":
            self.observe_local(
                stats.get("tokens_in"),
                stats.get("ttft_s"),
                stats.get("tokens_out"),
                stats.get("decode_s"),
                complete=complete,
            )
        else:
            tokens = stats.get("tokens_out") if complete else None
            self.observe_cloud(stats.get("bytes"), stats.get("transfer_s"), tokens)

    def snapshot(self, prior: LatencyModel) -> EstimateSnapshot:
        """The figures in force now: measured ones, each decayed toward ``prior``'s by its age."""
        now, k, h = self.clock(), self.min_samples, self.half_life_s
        link, local, cloud = prior.link, prior.local, prior.cloud
        bpt = link.bytes_per_token or 4.0
        with self._lock:
            bw = decayed(link.bandwidth_tokens_s * bpt, self.cloud_bytes_s, k, h, now)
            return EstimateSnapshot(
                rtt_s=decayed(link.overhead_s, self.rtt_s, k, h, now),
                cloud_tokens_s=None if bw is None else bw / bpt,
                local_prefill_s=decayed(local.prefill, self.local_prefill_s, k, h, now),
                local_decode_s=decayed(local.decode, self.local_decode_s, k, h, now),
                local_response_tokens=decayed(
                    local.mean_response_tokens, self.local_tokens, k, h, now
                ),
                cloud_response_tokens=decayed(
                    cloud.mean_response_tokens, self.cloud_tokens, k, h, now
                ),
            )

    def raw(self) -> dict[str, float | None]:
        """The undecayed EWMAs (for /healthz and metrics)."""
        return {
            "rtt_s": self.rtt_s.value,
            "cloud_bytes_s": self.cloud_bytes_s.value,
            "local_decode_s_per_token": self.local_decode_s.value,
            "local_prefill_s_per_token": self.local_prefill_s.value,
            "local_response_tokens": self.local_tokens.value,
            "cloud_response_tokens": self.cloud_tokens.value,
        }


class LocalLoad:
    """The local side's queue as this ingress replica sees it, as an expected wait (seconds).

    `slots` requests run at once on the local side (replicas x concurrency); a request beyond
    them waits, on average, `queued / slots` service times. The service time is the EWMA of
    measured local requests once `min_samples` exist, else the caller's prior (the model's T_s).
    """

    def __init__(self, slots: int, weight: float = 0.2, min_samples: int = 3) -> None:
        self.slots = max(1, int(slots))
        self.inflight = 0
        self.service_s = Ewma(weight)
        self.min_samples = min_samples

    def started(self) -> None:
        self.inflight += 1

    def finished(self, seconds: float | None) -> None:
        self.inflight = max(0, self.inflight - 1)
        if seconds is not None:
            self.service_s.update(seconds)

    def wait_s(self, prior_service_s: float) -> float:
        queued = self.inflight + 1 - self.slots  # the new request counted
        if queued <= 0:
            return 0.0
        measured = self.service_s.value if self.service_s.n >= self.min_samples else None
        return queued / self.slots * (measured if measured is not None else prior_service_s)


class QuantileTracker:
    """theta for a target cloud share: :func:`theta_for_share` over a sliding window of scores,
    clipped to optional bounds; None until ``min_fill`` scores are in.

    The quantile alone holds the share only as well as the window predicts the next requests
    (a few points off on a few hundred); so the share it aims at is corrected by how far the
    window's own decisions are from the target (``gain`` x error, a proportional controller
    over the window): the realised share converges on the target, while a short burst that the
    queue pushes to the cloud still spills above it for a while (the window is slow)."""

    def __init__(
        self,
        target: float,
        bounds: tuple[float, float] | None = None,
        window: int = 200,
        min_fill: int = 20,
        gain: float = 1.0,
    ) -> None:
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"target cloud share must be in [0, 1], got {target}")
        if bounds is not None and bounds[0] > bounds[1]:
            raise ValueError(f"theta bounds {list(bounds)} are reversed")
        self.target = float(target)
        self.bounds = None if bounds is None else (float(bounds[0]), float(bounds[1]))
        self.window = max(1, int(window))
        self.min_fill = max(1, min(int(min_fill), self.window))
        self.gain = float(gain)
        self._order: deque[float] = deque()  # arrival order, to evict the oldest
        self._sorted: list[float] = []
        self._sides: deque[bool] = deque(maxlen=self.window)  # True: cloud
        self.n_seen = 0
        self._lock = threading.Lock()

    @property
    def fill(self) -> int:
        return len(self._sorted)

    @property
    def ready(self) -> bool:
        return self.fill >= self.min_fill

    def observe(self, score: float, cloud: bool | None = None) -> None:
        """One request's score (NaN scores are skipped) and, if known, whether it went to cloud."""
        with self._lock:
            if cloud is not None:
                self._sides.append(bool(cloud))
            if math.isnan(score):
                return
            self.n_seen += 1
            self._order.append(score)
            bisect.insort(self._sorted, score)
            if len(self._order) > self.window:
                old = self._order.popleft()
                del self._sorted[bisect.bisect_left(self._sorted, old)]

    def aim(self) -> float:
        """The share the quantile aims at: the target, corrected by the window's error."""
        observed = self.cloud_share()
        if observed is None or len(self._sides) < self.min_fill:
            return self.target
        return min(1.0, max(0.0, self.target + self.gain * (self.target - observed)))

    def _quantile(self) -> float:
        return theta_for_share(self._sorted, self.aim(), presorted=True)

    def theta(self) -> float | None:
        if not self.ready:
            return None
        q = self._quantile()
        if self.bounds is not None:
            q = min(self.bounds[1], max(self.bounds[0], q))
        return q

    @property
    def clipped(self) -> bool:
        """True when the bounds hold theta away from the quantile (the share cannot hold)."""
        if self.bounds is None or not self.ready:
            return False
        q = self._quantile()
        return not self.bounds[0] <= q <= self.bounds[1]

    def cloud_share(self) -> float | None:
        """The share of the window's decisions that went to the cloud (None: none yet)."""
        return sum(self._sides) / len(self._sides) if self._sides else None

    def state(self) -> dict[str, Any]:
        return {
            "target_cloud_share": self.target,
            "aim": self.aim(),
            "theta": self.theta(),
            "bounds": None if self.bounds is None else list(self.bounds),
            "clipped": self.clipped,
            "fill": self.fill,
            "window": self.window,
            "observed_cloud_share": self.cloud_share(),
            "seen": self.n_seen,
        }
