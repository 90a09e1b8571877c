"""`localroute evaluate`: router scores -> fused decisions -> the numbers a user acts on.

Modules: ``config`` (the `evaluate:` section, model pairs as data), ``context`` (what every
experiment shares, and the router artifact), ``sides`` (both sides' figures with provenance),
``scoring`` (router scores: the artifact plus fitted baselines), ``pairs`` (the typed pair table,
built once per pair), ``experiments/`` (fusion, multiturn, savings: one unit each), ``run``
(the entry points).
"""

from pipelines.evaluate.config import DemoScale, EvaluateConfig, PairSpec
from pipelines.evaluate.run import demo_stage, run_evaluate

__all__ = ["DemoScale", "EvaluateConfig", "PairSpec", "demo_stage", "run_evaluate"]
