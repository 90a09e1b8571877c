"""Grading: extraction on real references from the shipped build, code run in a subprocess with
a timeout, and the judge's prompt, parsing and normalisation through an engine."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from localroute.data.build import read_table
from localroute.data.paths import SHIPPED_DIR
from localroute.engines import Generation
from localroute.grading import Judge, grade, grade_judged, parse_rating
from localroute.grading.extract import choice_letter, final_number, token_f1

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("The answer is (C).", "C"),
        ("Answer: b", "B"),
        ("I think B. Actually, looking again, D)", "D"),
        ("A", "A"),
        ("no idea", None),
    ],
)
def test_choice_letter(text, letter):
    assert choice_letter(text, 4) == letter


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("so she makes 9 * 2 = $18 every day.\n#### 18", 18.0),
        ("The total is 1,250 dollars", 1250.0),
        ("thus \\boxed{\\frac{3}{4}} hmm 3/4", 0.75),
        ("x = -2.5", -2.5),
        ("no number here", None),
    ],
)
def test_final_number(text, number):
    assert final_number(text) == number


def test_gold_answers_of_the_real_data_grade_correct():
    q = read_table(SHIPPED_DIR, "queries", ["gsm8k", "routellm_mmlu"])
    gsm = q.filter(pc.equal(q["source"], "gsm8k")).slice(0, 200).to_pylist()
    # GSM8K's reference is a worked solution ending in `#### n`: graded against itself, correct.
    assert all(grade("number", r["reference"], r["reference"]).correct for r in gsm)
    assert not grade("number", "#### 123456789", gsm[0]["reference"]).correct
    mmlu = q.filter(pc.equal(q["source"], "routellm_mmlu")).slice(0, 50).to_pylist()
    for r in mmlu:
        assert grade("mc_letter", f"Answer: {r['reference']}", r["reference"], r["choices"]).correct
        wrong = next(c for c in "ABCD" if c != r["reference"])
        assert grade("mc_letter", f"({wrong})", r["reference"], r["choices"]).score == 0.0


def test_text_matching():
    assert grade("exact", " Paris ", "Paris").correct
    assert not grade("exact", "paris", "Paris").correct
    assert grade("normalised", "The Paris!", "paris").correct
    assert token_f1("Sammy Davis Jr", "Sammy Davis, Jr") == 1.0
    assert 0 < grade("f1", "Sammy Davis", "Sammy Davis, Jr").score < 1
    cov = grade("coverage", "A dog ran to the lake.", "dog, lake, needle, field")
    assert cov.score == 0.5 and cov.correct is None
    assert grade("math_answer", "so \\boxed{28}", "28").correct


MBPP_TESTS = "['assert add(1, 2) == 3', 'assert add(-1, 1) == 0', 'assert add(2, 2) == 4']"


def test_code_runs_in_a_subprocess_with_a_timeout():
    ok = grade("code", "```python\ndef add(a, b):\n    return a + b\n```", MBPP_TESTS)
    assert ok.correct and ok.score == 1.0
    partial = grade("code", "def add(a, b):\n    return 3 if a == 1 else a + b + 1", MBPP_TESTS)
    assert partial.score == pytest.approx(1 / 3) and not partial.correct
    broken = grade("code", "def add(a, b) return", MBPP_TESTS)
    assert broken.score == 0.0 and not broken.correct
    hang = grade("code", "while True:\n    pass", MBPP_TESTS, code_timeout_s=1.0)
    assert hang.score == 0.0 and not hang.correct
    # The program cannot take the grader down with it.
    assert grade("code", "import os\nos._exit(3)", MBPP_TESTS).score == 0.0


def test_judge_without_a_reference_or_judge_is_null():
    g = grade("judge", "anything", None)
    assert g.score is None and g.correct is None


def test_parse_rating():
    assert parse_rating("good answer. Rating: [[8]]") == 8.0
    assert parse_rating("Rating: 7.5") == 7.5
    assert parse_rating("Rating: [[11]]") is None
    assert parse_rating("no rating") is None


class _ScriptedJudgeEngine:
    """Stands in for the judge model only; what is under test is the prompt and the scoring."""

    name, model, hardware = "scripted", "judge", "none"

    def __init__(self, replies):
        self.replies, self.prompts = replies, []

    def generate(self, requests):
        self.prompts += [r.messages[-1]["content"] for r in requests]
        return [Generation(text=self.replies[i]) for i in range(len(requests))]


def test_judge_prompt_and_normalisation():
    engine = _ScriptedJudgeEngine(["Helpful. Rating: [[8]]", "Rating: [[1]]", "I refuse"])
    grades = grade_judged(Judge(engine), [("Q1?", "A1"), ("Q2?", "A2"), ("Q3?", "A3")])
    assert "[Question]\nQ1?" in engine.prompts[0] and "A1" in engine.prompts[0]
    assert [g.score_raw for g in grades] == [8.0, 1.0, None]
    assert grades[0].score == pytest.approx(7 / 9) and grades[1].score == 0.0
    assert grades[2].score is None and grades[2].error


def test_judge_through_a_real_engine(tmp_path):
    from localroute.engines import make_engine
    from localroute.models.tiny import build_tiny_decoder

    engine = make_engine("transformers", str(build_tiny_decoder(tmp_path / "t")), device="cpu")
    (g,) = grade_judged(Judge(engine, max_tokens=8), [("What is 2+2?", "4")])
    # A random-weight judge gives no parsable rating: the score is null, not a made-up 0.
    assert g.score is None and g.score_raw is None and g.error == "judge gave no rating"
