"""An LLM judge through any engine: MT-Bench's single-answer prompt, a 1-10 rating.

The judge's `[[rating]]` is kept on its own scale in score_raw and normalised to (s - 1) / 9 in
score, the same mapping the RouteLLM MT-Bench outcomes use.
"""

from __future__ import annotations

import re

from localroute.engines.base import Engine, GenerationRequest

SYSTEM = "You are a helpful assistant."
PROMPT = (
    "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response "
    "provided by an AI assistant to the user question displayed below. Your evaluation should "
    "consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level "
    "of detail of the response. Begin your evaluation by providing a short explanation. Be as "
    "objective as possible. After providing your explanation, you must rate the response on a "
    'scale of 1 to 10 by strictly following this format: "[[rating]]", for example: '
    '"Rating: [[5]]".\n\n[Question]\n{question}\n\n[The Start of Assistant\'s Answer]\n'
    "{answer}\n[The End of Assistant's Answer]"
)
_RATING = re.compile(r"\[\[(\d+(?:\.\d+)?)\]\]")
_RATING_LOOSE = re.compile(r"[Rr]ating:\s*\[?(\d+(?:\.\d+)?)")


def parse_rating(text: str) -> float | None:
    m = _RATING.search(text or "") or _RATING_LOOSE.search(text or "")
    if not m:
        return None
    value = float(m.group(1))
    return value if 1 <= value <= 10 else None


class Judge:
    def __init__(self, engine: Engine, max_tokens: int = 512):
        self.engine = engine
        self.max_tokens = max_tokens

    def rate(self, pairs: list[tuple[str, str]]) -> list[float | None]:
        """1-10 ratings for (question, answer) pairs; None where the judge gave none."""
        requests = [
            GenerationRequest(
                [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": PROMPT.format(question=q, answer=a)},
                ],
                max_tokens=self.max_tokens,
                temperature=0.0,
            )
            for q, a in pairs
        ]
        return [None if g.error else parse_rating(g.text) for g in self.engine.generate(requests)]
