"""RouterDC's seven 7-8B models on GSM8K, MMLU and ARC, joined by text with RouteLLM's outcomes
(GPT-4 and Mixtral) where those exist."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from localroute.data.loaders import routellm
from localroute.data.loaders.gsm8k_mmlu import gsm8k_gold, mmlu_by_prompt
from localroute.data.loaders.rows import SourceTables, outcome, query, tables, user
from localroute.data.readers import read_scored_questions
from localroute.data.splits import normalise
from localroute.errors import DataError

JOINED = ("gsm8k", "mmlu")  # the tasks RouteLLM also published


def _gold(root: Path, task: str) -> dict[str, str]:
    if task == "gsm8k":
        return gsm8k_gold(root, ("train", "test"))
    if task == "mmlu":
        return {k: v["reference"] for k, v in mmlu_by_prompt(root).items()}
    return {}


def routerdc_loader(
    task: str, stem: str, grading: str, correct_rule: Callable[[float], bool]
) -> Callable[[Path, str], SourceTables]:
    """The loader of RouterDC's `task` files (`stem` with {split}); `correct_rule(score)`."""
    source = f"routerdc_{task}"

    def load(root: Path, run_id: str) -> SourceTables:
        joined = task in JOINED
        by_prompt = routellm.routellm_by_prompt(root, task) if joined else {}
        gold = _gold(root, task)
        contaminated = routellm.contaminated_prompts(root, task) if joined else frozenset()
        queries, outcomes = [], []
        for split in ("train", "test"):
            path = root / "routerdc_small7" / f"{stem.format(split=split)}.json"
            for i, text, scores in read_scored_questions(path):
                prompt = text if task != "mmlu" else text + "\nAnswer:"
                key = normalise(prompt)
                q = query(
                    source,
                    f"{split}:{i}",
                    task,
                    user(prompt),
                    grading,
                    split,
                    gold.get(key),
                    contam=key in contaminated,
                )
                queries.append(q)
                for model, value in sorted(scores.items()):
                    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                        raise DataError(f"{path}: entry {i} score of {model} is not in [0, 1]")
                    v = float(value)
                    outcomes.append(outcome(q, model, run_id, v, correct=correct_rule(v), raw=v))
                match = by_prompt.get(key)
                for model, ok in (match["correct"] if match else {}).items():
                    outcomes.append(outcome(q, model, routellm.RUN_ID, float(ok), correct=ok))
        return tables(source, queries, outcomes)

    return load
