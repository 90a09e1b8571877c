"""Choose a router's threshold on a calibration split, as RouteLLM does.

Either for a target cloud share (the threshold is that quantile of the scores) or for a target
quality (the least cloud share whose mean quality on the split reaches it). The scores are the
router's calibrated p (calibration.py makes them probabilities; this picks the cut).
"""

from __future__ import annotations

import numpy as np

from localroute.metrics import quality_vs_cloud_share


def threshold_for_cloud_share(p: np.ndarray, share: float) -> float:
    """p > threshold goes to the cloud for at most `share` of the split's queries: the one
    quantile rule training and the online tracker share (core.policy.theta_for_share)."""
    from localroute.core.policy import theta_for_share

    return theta_for_share(p, min(max(float(share), 0.0), 1.0))


def threshold_for_quality(p, q_local, q_cloud, target: float) -> tuple[float, float]:
    """(threshold, cloud share): the least cloud share whose mean quality reaches `target`."""
    curve = quality_vs_cloud_share(p, q_local, q_cloud)
    reached = np.nonzero(curve.value >= target - 1e-12)[0]
    share = float(curve.cloud_share[reached[0]]) if reached.size else 1.0
    return threshold_for_cloud_share(p, share), share


def choose_threshold(router, val: dict, target: str, value: float) -> dict:
    """Set router.threshold from the validation split; records and returns what was chosen."""
    p = router.score(val)
    if target == "cloud_share":
        threshold, share = threshold_for_cloud_share(p, value), value
    else:
        threshold, share = threshold_for_quality(p, val["q_local"], val["q_cloud"], value)
    router.threshold = threshold
    cloud = p > threshold
    quality = np.where(cloud, val["q_cloud"], val["q_local"]).mean() if len(p) else float("nan")
    info = {
        "target": target,
        "value": value,
        "threshold": threshold,
        "n_val": int(len(p)),
        "val_cloud_share": float(cloud.mean()) if len(p) else float("nan"),
        "val_quality": float(quality),
        "wanted_cloud_share": share,
    }
    router.info["calibration"] = info
    return info
