"""Grading: score an answer by the query's `grading` method into (score in [0, 1], raw, correct).

Methods: mc_letter, number, math_answer, exact, normalised, f1, coverage, code, judge. `judge`
needs a Judge (any engine); without one its score stays None rather than a made-up figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from localroute.grading import extract
from localroute.grading.code_exec import parse_tests, run_tests
from localroute.grading.judge import Judge, parse_rating


@dataclass(frozen=True)
class Grade:
    score: float | None
    score_raw: float | None = None
    correct: bool | None = None
    error: str | None = None


def _binary(ok: bool) -> Grade:
    return Grade(float(ok), float(ok), ok)


def grade(
    method: str,
    answer: str,
    reference: str | None,
    choices: list[str] | None = None,
    code_timeout_s: float = 5.0,
) -> Grade:
    """Grade one answer; `judge` is graded in batches by `grade_judged` instead."""
    if method in ("judge", "none") or reference is None:
        return Grade(None)
    if method == "mc_letter":
        return _binary(
            extract.choice_letter(answer, len(choices) if choices else None) == reference
        )
    if method == "number":
        want, got = extract.final_number(reference), extract.final_number(answer)
        return _binary(want is not None and got is not None and abs(want - got) < 1e-6)
    if method == "math_answer":
        got = extract.boxed(answer) or answer
        a, b = extract.final_number(got), extract.final_number(reference)
        if a is not None and b is not None:
            return _binary(abs(a - b) < 1e-6)
        return _binary(extract.normalise(got) == extract.normalise(reference))
    if method == "exact":
        return _binary((answer or "").strip() == reference.strip())
    if method == "normalised":
        return _binary(extract.normalise(answer) == extract.normalise(reference))
    if method == "f1":
        f1 = extract.token_f1(answer, reference)
        return Grade(f1, f1, None)
    if method == "coverage":
        concepts = [c.strip().lower() for c in reference.split(",") if c.strip()]
        text = (answer or "").lower()
        frac = sum(c in text for c in concepts) / len(concepts) if concepts else 0.0
        return Grade(frac, frac, None)
    if method == "code":
        tests = parse_tests(reference)
        result = run_tests(extract.code_block(answer), tests, code_timeout_s)
        frac = result.passed / result.total if result.total else 0.0
        return Grade(frac, frac, result.total > 0 and result.passed == result.total)
    return Grade(None, error=f"unknown grading method {method!r}")


def grade_judged(judge: Judge, pairs: list[tuple[str, str]]) -> list[Grade]:
    """MT-Bench-style grades: raw 1-10 rating and (s - 1) / 9; None where the judge failed."""
    return [
        Grade(None, error="judge gave no rating") if r is None else Grade((r - 1) / 9, r, None)
        for r in judge.rate(pairs)
    ]


__all__ = ["Grade", "Judge", "grade", "grade_judged", "parse_rating"]
