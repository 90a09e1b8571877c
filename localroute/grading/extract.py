"""Answer extraction and text matching: choice letters, final numbers, normalised text, F1.

Extraction prefers explicit markers (`Answer: B`, `#### 42`, `\\boxed{42}`) and falls back to the
last candidate in the text, since models reason first and answer last.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_LETTER_MARKED = re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-J])\b\)?", re.I)
_LETTER_ALONE = re.compile(r"(?:^|[\s(\[])([A-J])(?:[).\]:]|\s|$)")
_FRAC = re.compile(r"\\d?frac\{([^{}]*)\}\{([^{}]*)\}")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def choice_letter(text: str, n_choices: int | None = None) -> str | None:
    letters = string.ascii_uppercase[: n_choices or 10]
    for pattern in (_LETTER_MARKED, _LETTER_ALONE):
        found = [m.upper() for m in pattern.findall(text or "") if m.upper() in letters]
        if found:
            return found[0] if pattern is _LETTER_MARKED else found[-1]
    return None


def boxed(text: str) -> str | None:
    """The content of the last \\boxed{...}, braces balanced."""
    start = (text or "").rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def final_number(text: str) -> float | None:
    """GSM8K-style: after `####` if present, else in \\boxed{}, else the last number."""
    text = text or ""
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    elif (b := boxed(text)) is not None:
        text = b
    text = _FRAC.sub(r"\1/\2", text)  # LaTeX \frac{3}{4} -> 3/4
    found = _NUMBER.findall(text)
    return _to_float(found[-1]) if found else None


def _to_float(token: str) -> float | None:
    token = token.replace(",", "")
    try:
        if "/" in token:
            num, den = token.split("/")
            return float(num) / float(den)
        return float(token)
    except (ValueError, ZeroDivisionError):
        return None


def normalise(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = (text or "").lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalise(prediction).split(), normalise(reference).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or not common:
        return float(pred == ref)
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def code_block(text: str) -> str:
    """The first fenced code block, else the text itself."""
    m = re.search(r"```(?:python|py)?\s*\n(.*?)```", text or "", re.S)
    return m.group(1) if m else (text or "")
