"""The operating point: what fixes a deployment's decisions, resolved once for train, evaluate
and serve.

A router's calibrated p becomes a decision only together with alpha, theta (or a target-share
rule) and the latency model they were chosen on. :class:`DeploymentLatency` builds that latency
model for the models actually deployed: a preset's per-token times over a link, the deployed
local model's *measured* per-token times where a profile exists, and answer lengths bounded by
what bounds them (the deployment's caps, a request's ``max_tokens``) instead of a paper's
benchmark means. :func:`resolve_operating_point` applies the one precedence:
config > router artifact > the latency preset's workload alpha (Table I) > none.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from localroute.core.latency import LatencyModel
from localroute.errors import ConfigError


@dataclass(frozen=True)
class DeploymentLatency:
    """The latency model the deployment decides with (and train chooses alpha and theta on).

    ``local_max_tokens`` / ``cloud_max_tokens``: each deployment's cap on generated tokens; with
    nothing measured, a side's expected answer is its cap (an upper bound, provenance
    ``estimated``), and per request never more than the request's ``max_tokens``. ``measured``:
    outcome rows of the deployed local model (``localroute profile``); its median per-token times
    replace the preset's for the local side (provenance ``measured``, this model on this host).
    """

    links_file: str
    preset: str = "paper-table1"
    link: str | None = None
    local_max_tokens: int = 32
    cloud_max_tokens: int = 1024
    measured: str | None = None

    def prior(self) -> LatencyModel:
        """The model before any live measurement: eqs. 1-8 with this deployment's inputs."""
        from localroute.core.profiles import (
            get_link,
            get_preset,
            load_latency_presets,
            load_link_profiles,
        )

        preset = get_preset(self.preset, load_latency_presets(self.links_file))
        link = get_link(self.link or preset.link, load_link_profiles(self.links_file))
        local = preset.local.with_response(float(self.local_max_tokens), "estimated")
        cloud = preset.cloud.with_response(float(self.cloud_max_tokens), "estimated")
        if self.measured:
            local = _measured_local(local, self.measured)
        return LatencyModel(local, cloud, link, preset.router_s_per_token, preset.router_provenance)

    def describe(self) -> dict[str, Any]:
        """What router.json and the report record about the latency model a point was chosen on."""
        return {
            "preset": self.preset,
            "link": self.link,
            "local_max_tokens": self.local_max_tokens,
            "cloud_max_tokens": self.cloud_max_tokens,
            "measured": self.measured,
        }


def _measured_local(side, path: str):
    from localroute.core.measured import load_measured

    prof = load_measured(path)
    if prof is None or prof.decode_s_per_token is None:
        return side
    return dataclasses.replace(
        side,
        name=f"{prof.model} on {prof.hardware}",
        prefill_s_per_token=prof.prefill_s_per_token or side.prefill,
        decode_s_per_token=prof.decode_s_per_token,
        provenance="measured",
        source=prof.label,
    )


def response_tokens(mean: float, max_tokens: int | None) -> float:
    """L_r of one request on one side: the side's expected answer, bounded by ``max_tokens``."""
    return mean if max_tokens is None else min(mean, float(max_tokens))


@dataclass(frozen=True)
class TargetShare:
    """Hold ``share`` of recent traffic on the cloud: theta follows the (1 - share) quantile of
    the last ``window`` load-free fused scores, within ``bounds`` (None: unbounded)."""

    share: float
    bounds: tuple[float, float] | None = None
    window: int = 200
    min_samples: int = 20

    def check(self, where: str) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ConfigError(f"{where}.target_cloud_share must be in [0, 1], got {self.share}")
        b = self.bounds
        if b is not None and (len(b) != 2 or not -math.inf < b[0] <= b[1] < math.inf):
            raise ConfigError(f"{where}.theta_bounds must be [lo, hi] with lo <= hi, got {b}")
        if self.window < 1 or not 1 <= self.min_samples <= self.window:
            raise ConfigError(
                f"{where}: target_window must be >= 1 and target_min_samples in [1, target_window]"
            )


@dataclass(frozen=True)
class OperatingPoint:
    """alpha and theta (or a target-share rule), each with where it came from."""

    alpha: float
    alpha_from: str
    theta: float
    theta_from: str
    target: TargetShare | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.target is not None and self.target.bounds is not None:
            d["target"]["bounds"] = list(self.target.bounds)
        return d


def resolve_operating_point(
    router: Any = None,
    *,
    alpha: float | None = None,
    theta: float | None = None,
    target: TargetShare | None = None,
    workload_alpha: float | None = None,
) -> OperatingPoint:
    """The one precedence, for every job: the config's value (``alpha``, ``theta``), else the
    router artifact's (chosen together on its validation split), else for alpha the latency
    preset's workload alpha (a router served by name), else 0 (no fusion) and theta 0.5."""
    trained = router is not None and getattr(router, "fingerprint", None) is not None
    if alpha is not None:
        a, a_from = float(alpha), "config"
    elif trained:
        a, a_from = float(router.alpha), "artifact"
    elif workload_alpha is not None:
        a, a_from = float(workload_alpha), "latency preset workload"
    else:
        a, a_from = 0.0, "none (no fusion)"
    if theta is not None:
        t, t_from = float(theta), "config"
    elif trained:
        t, t_from = float(router.threshold), "artifact"
    else:
        t, t_from = float(getattr(router, "threshold", 0.5)), "default"
    return OperatingPoint(a, a_from, t, t_from, target)
