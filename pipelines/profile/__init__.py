"""Ray Data job: profile every pool's model on its own hardware, grade it, write outcome rows.

The query table fans out to one actor pool per configured pool (placed by accelerator type or node
labels, never by a bare GPU count: Ray 2.60 counts Apple Metal as a GPU). Each actor batch
generates (the engine packs it into forward passes by tokens), meters energy and grades; the driver
writes its rows as one Parquet file whose name is a digest of the batch's keys, atomically, while
the actors answer the next batches. A batch Ray retries after a killed worker reaches the driver
once, so nothing is lost or duplicated, and a rerun skips the (query, turn, model, hardware) keys
already on disk. Layout: `<out>/outcomes/<model>--<hardware>--<digest>.parquet`, so `read_table(out,
"outcomes")` and `read_profile_outcomes(out)` both read it.
"""

from pipelines.profile.config import TINY, JudgeConfig, PoolConfig, ProfileConfig
from pipelines.profile.driver import demo_stage, remote_args, resolve_model, run_profile
from pipelines.profile.work import (
    done_keys,
    outcome_file,
    pending,
    read_profile_outcomes,
    select_queries,
)
from pipelines.profile.worker import ProfileWorker, conversation, turn_reference

__all__ = [
    "TINY",
    "JudgeConfig",
    "PoolConfig",
    "ProfileConfig",
    "ProfileWorker",
    "conversation",
    "demo_stage",
    "done_keys",
    "outcome_file",
    "pending",
    "read_profile_outcomes",
    "remote_args",
    "resolve_model",
    "run_profile",
    "select_queries",
    "turn_reference",
]
