"""The public sources in ../shared/data, and where each one's loader lives.

Each source is one entry in SOURCES: where its files come from, whether the project may ship a
converted copy, and a loader (localroute/data/loaders/, one module per family) returning its
queries, outcomes and model catalogue. Outcomes taken from published files carry provenance
"published"; they hold no latency or energy (those are null).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localroute.data.loaders import routellm
from localroute.data.loaders.chat import load_arena_hard, load_sharegpt500
from localroute.data.loaders.gsm8k_mmlu import load_gsm8k, load_mmlu, mmlu_prompt
from localroute.data.loaders.llmrouter import load_llmrouter
from localroute.data.loaders.mtbench import load_mtbench, load_mtbench101
from localroute.data.loaders.routerdc import routerdc_loader
from localroute.data.loaders.rows import (
    GPT4,
    MIXTRAL,
    NAMED_SIZES_B,
    SourceTables,
    model_size_b,
    published_run_id,
)
from localroute.errors import DataError

__all__ = [
    "GPT4",
    "MIXTRAL",
    "NAMED_SIZES_B",
    "SOURCES",
    "SOURCES_BY_NAME",
    "Source",
    "SourceTables",
    "get_source",
    "mmlu_prompt",
    "model_size_b",
]


@dataclass(frozen=True)
class Source:
    name: str
    folder: str
    origin: str  # repository @ commit the files were copied from
    licence: str
    shippable: bool  # SOURCES.md allows a converted copy inside the project
    loader: Callable[[Path, str], SourceTables]  # (source root, run_id) -> tables

    @property
    def run_id(self) -> str:
        return published_run_id(self.origin)

    def load(self, root: Path) -> SourceTables:
        return self.loader(root, self.run_id)


_ROUTERDC = ("routerdc_small7", "shuhao02/RouterDC @ 0e63989", "none stated", False)

SOURCES: tuple[Source, ...] = (
    Source("gsm8k", "gsm8k", "openai/grade-school-math @ 3101c7d", "MIT", True, load_gsm8k),
    Source(
        "mmlu",
        "mmlu",
        "HaeChan0305/MLILAB-FedLLM @ d92730e",
        "Apache-2.0 repo; MMLU itself MIT",
        True,
        load_mmlu,
    ),
    Source(
        "mtbench",
        "mtbench",
        "lm-sys/FastChat @ 0e6d3e4; enricai/FastChat @ edacaa5",
        "Apache-2.0",
        True,
        load_mtbench,
    ),
    Source(
        "mtbench101",
        "mtbench101",
        "mtbench101/mt-bench-101 @ bc18b3e",
        "Apache-2.0",
        True,
        load_mtbench101,
    ),
    *(
        Source(f"routellm_{task}", "routellm", routellm.ORIGIN, "Apache-2.0", True, load)
        for task, load in (
            ("gsm8k", routellm.load_routellm_gsm8k),
            ("mmlu", routellm.load_routellm_mmlu),
            ("mtbench", routellm.load_routellm_mtbench),
        )
    ),
    Source("llmrouter", "llmrouter", "ulab-uiuc/LLMRouter @ 4e7a796", "MIT", True, load_llmrouter),
    # GSM8K scores: fraction correct over 10 samples; MMLU/ARC: 0 or the right option's probability.
    Source(
        "routerdc_gsm8k",
        *_ROUTERDC,
        routerdc_loader("gsm8k", "gsm8k-{split}", "number", lambda v: v >= 0.5),
    ),
    Source(
        "routerdc_mmlu",
        *_ROUTERDC,
        routerdc_loader("mmlu", "mmlu_{split}", "mc_letter", lambda v: v > 0),
    ),
    Source(
        "routerdc_arc",
        *_ROUTERDC,
        routerdc_loader("arc", "arc_challenge_{split}", "mc_letter", lambda v: v > 0),
    ),
    Source(
        "arena_hard",
        "arena_hard",
        "lmarena/arena-hard-auto @ 196f6b8",
        "Apache-2.0",
        True,
        load_arena_hard,
    ),
    Source(
        "sharegpt500",
        "sharegpt500",
        "ml-energy/leaderboard-v2 @ c3af7f3",
        "Apache-2.0 repo; content unclear",
        False,
        load_sharegpt500,
    ),
)
SOURCES_BY_NAME: dict[str, Source] = {s.name: s for s in SOURCES}


def get_source(name: str) -> Source:
    if name not in SOURCES_BY_NAME:
        raise DataError(f"unknown source {name!r}; known: {', '.join(SOURCES_BY_NAME)}")
    return SOURCES_BY_NAME[name]
