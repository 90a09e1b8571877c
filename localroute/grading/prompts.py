"""How a query is put to a model so that its answer can be graded by the query's method.

Multiple-choice sources end their question with a bare "Answer:" (a completion-style cue that a chat
model, behind its chat template, often ignores). For `mc_letter` the cue becomes an explicit request
for the letter, so the letter can be parsed from a small instruct model's answer; the choices stay
in the question exactly as the source wrote them.
"""

from __future__ import annotations

import string


def letter_instruction(n_choices: int | None) -> str:
    letters = string.ascii_uppercase[: n_choices or 4]
    listed = ", ".join(letters[:-1]) + f" or {letters[-1]}"
    return f"Answer with the letter ({listed}) of the correct choice only."


def instruct(messages: list[dict], grading: str | None, choices: list[str] | None) -> list[dict]:
    """`messages` with the last user turn phrased for `grading`; other methods pass unchanged."""
    if grading != "mc_letter" or not messages or messages[-1]["role"] != "user":
        return messages
    text = messages[-1]["content"].rstrip()
    if text.endswith("Answer:"):
        text = text[: -len("Answer:")].rstrip()
    last = {**messages[-1], "content": f"{text}\n\n{letter_instruction(len(choices or []))}"}
    return [*messages[:-1], last]
