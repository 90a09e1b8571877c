"""Train one router (`localroute train`) or compare several (`localroute evaluate-routers`)."""

from pipelines.routers.compare import evaluate_routers
from pipelines.routers.splits import (
    Splits,
    balanced,
    load_splits,
    parse_pair,
    splits_for,
    subsample,
)
from pipelines.routers.train import fit_router, random_band, score_test_split, train_one

__all__ = [
    "Splits",
    "balanced",
    "evaluate_routers",
    "fit_router",
    "load_splits",
    "parse_pair",
    "random_band",
    "score_test_split",
    "splits_for",
    "subsample",
    "train_one",
]
