"""Split a batch's energy among its requests by the tokens each processed in each interval.

The counter is sampled at instants t0 < t1 < ... during the batch; each interval's energy goes to
the requests in proportion to the tokens they processed in it (a span's tokens are spread evenly
over its duration). An interval in which no request processed a token is idle and stays in its
own bucket, so attributed + idle is exactly the measured total.
"""

from __future__ import annotations

from dataclasses import dataclass

from localroute.engines.base import TokenSpan


@dataclass(frozen=True)
class Attribution:
    per_request: list[float]
    idle_j: float
    total_j: float


def attribute(samples: list[tuple[float, float]], spans: list[list[TokenSpan]]) -> Attribution:
    """`samples`: (perf_counter time, counter J) in time order; `spans`: per request."""
    shares = [0.0] * len(spans)
    idle = 0.0
    for (ta, ea), (tb, eb) in zip(samples, samples[1:], strict=False):
        energy = eb - ea
        weights = [sum(_tokens_within(s, ta, tb) for s in req) for req in spans]
        total_w = sum(weights)
        if total_w <= 0:
            idle += energy
            continue
        for i, w in enumerate(weights):
            shares[i] += energy * w / total_w
    total = samples[-1][1] - samples[0][1] if len(samples) > 1 else 0.0
    return Attribution(shares, idle, total)


def _tokens_within(span: TokenSpan, ta: float, tb: float) -> float:
    if span.end <= span.start:  # an instant: counts where it falls
        return float(span.tokens) if ta <= span.start < tb else 0.0
    overlap = min(span.end, tb) - max(span.start, ta)
    return span.tokens * overlap / (span.end - span.start) if overlap > 0 else 0.0
