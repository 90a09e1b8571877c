"""What a router reads from a request: the prompt, its history and their lengths (no pyarrow).

The request path (serve) and the offline examples (examples.py) both build router batches here,
so a router reads the same thing in training and in service:

- `text`: the current user turn, the prompt that carries the question;
- `context`: the earlier turns of the conversation ("role: content", oldest first; "" for a
  single turn), which seed 001 eq. 10 feeds to the BERT router after the prompt;
- `prompt_words` / `context_words`: L_p and C_t, counted in whitespace words as seed 001 does,
  so the cost model needs no tokenizer.

A prompt longer than an encoder's window keeps its head and its tail (`head_tail`), and a long
history keeps its most recent part (`tail`): never a truncated shared prefix. Every text is
cleaned first (`clean_text`): a lone surrogate, bytes, None or NaN become a valid str.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Batch = Mapping[str, np.ndarray]  # columns as numpy arrays, Ray Data's "numpy" batch format

HEAD_SHARE = 0.25  # of a window, for a prompt too long for it: the rest is its tail
MAX_CHARS = 32_000  # a text is cut (head + tail) to this many characters before tokenising
ELLIPSIS = " ... "


def clean_text(value: object) -> str:
    """A valid UTF-8 str from anything a batch may hold (lone surrogates become '?')."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "replace").decode("utf-8")


def head_tail(text: str, max_chars: int = MAX_CHARS, head_share: float = HEAD_SHARE) -> str:
    """`text` if it fits in max_chars, else its head and tail around an ellipsis."""
    if len(text) <= max_chars:
        return text
    head = int(max_chars * head_share)
    tail = max_chars - head - len(ELLIPSIS)
    return text[:head] + ELLIPSIS + text[len(text) - tail :]


def window_spans(n: int, budget: int, head_share: float = HEAD_SHARE) -> tuple[int, int]:
    """(head, tail) token counts to keep of n tokens in a window of `budget`: all if they fit."""
    if n <= budget:
        return n, 0
    budget = max(budget, 0)
    head = int(budget * head_share)
    return head, budget - head


def cut_by_offsets(
    text: str, offsets: Sequence[tuple[int, int]], budget: int, keep: str = "head_tail"
) -> str:
    """Cut `text` to `budget` tokens given its tokens' character offsets (a tokenizer's).

    keep="head_tail": a long prompt keeps its head and tail; keep="tail": a long history keeps
    its most recent tokens.
    """
    n = len(offsets)
    if n <= budget:
        return text
    if budget <= 0:
        return ""
    if keep == "tail":
        return text[offsets[n - budget][0] :]
    head, tail = window_spans(n, budget)
    front = text[: offsets[head - 1][1]] if head else ""
    return front + ELLIPSIS + text[offsets[n - tail][0] :]


def words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class Turn:
    """One user turn as a router sees it."""

    prompt: str  # the user message of this turn
    context: str  # the earlier turns, "role: content" joined by blank lines ("" on turn 1)
    prompt_words: int  # L_p
    context_words: int  # C_t: words of the earlier turns (this turn's reply excluded)


def split_conversation(turns: Sequence[Mapping[str, str]], upto_turn: int) -> Turn:
    """User turn `upto_turn` (1-based) of a conversation, with the history before it.

    Messages after that user message (its reply, later turns) are not read: a router never sees
    the answer to the question it routes.
    """
    seen, history, prompt = 0, [], None
    for message in turns:
        role, content = str(message["role"]), clean_text(message["content"])
        if role == "user":
            seen += 1
            if seen == upto_turn:
                prompt = content
                break
        history.append((role, content))
    if prompt is None:  # fewer user turns than asked: the last user message, if any
        users = [i for i, (role, _) in enumerate(history) if role == "user"]
        if users:
            prompt = history[users[-1]][1]
            history = history[: users[-1]]
        else:
            prompt = ""
    context = "\n\n".join(f"{role}: {content}" for role, content in history)
    return Turn(prompt, context, words(prompt), sum(words(c) for _, c in history))


def conversation_text(turns: Sequence[Mapping[str, str]], upto_turn: int) -> tuple[str, int, int]:
    """The conversation up to user turn `upto_turn` as one text, with (prompt, context) words.

    A rendering of the whole conversation ("role: content" once it has several turns), kept for
    display and for callers that predate `split_conversation`; a router reads the prompt and
    the history apart (`split_conversation`, `request_batch`).
    """
    parts, seen, prompt_words, context_words = [], 0, 0, 0
    for message in turns:
        content = clean_text(message["content"])
        if message["role"] == "user":
            seen += 1
            if seen > upto_turn:
                break
        if message["role"] == "user" and seen == upto_turn:
            prompt_words = words(content)
        else:
            context_words += words(content)
        parts.append(f"{message['role']}: {content}" if upto_turn > 1 else content)
    return "\n\n".join(parts), prompt_words, context_words


def request_batch(messages: Sequence[Mapping[str, str]], task: str | None = None) -> dict:
    """A one-row router batch for a chat request (its last user turn), as serve scores it."""
    n_user = sum(1 for m in messages if m["role"] == "user")
    turn = split_conversation(messages, n_user)
    batch = {
        "text": np.array([turn.prompt], dtype=object),
        "context": np.array([turn.context], dtype=object),
        "prompt_words": np.array([turn.prompt_words], dtype=np.int64),
        "context_words": np.array([turn.context_words], dtype=np.int64),
        "turn": np.array([n_user], dtype=np.int64),
    }
    if task is not None:
        batch["task"] = np.array([task], dtype=object)
    return batch


# --------------------------------------------------------------------------- batch columns


def texts(batch: Batch) -> list[str]:
    """The prompts of a batch, cleaned and cut to MAX_CHARS."""
    return [head_tail(clean_text(t)) for t in batch["text"]]


def contexts(batch: Batch) -> list[str]:
    """The histories of a batch ("" where it has none), cleaned; long ones keep their tail."""
    n = len(batch["text"])
    if "context" not in batch:
        return [""] * n
    out = []
    for c in batch["context"]:
        c = clean_text(c)
        out.append(c[len(c) - MAX_CHARS :] if len(c) > MAX_CHARS else c)
    return out


def prompt_words(batch: Batch) -> np.ndarray:
    """L_p per row: the batch's column, else counted from the prompt; never negative or NaN."""
    if "prompt_words" in batch:
        w = np.asarray(batch["prompt_words"], dtype=np.float64)
    else:
        w = np.array([words(clean_text(t)) for t in batch["text"]], dtype=np.float64)
    return np.nan_to_num(np.maximum(w, 0.0), nan=0.0, posinf=0.0)


def take(batch: Batch, idx: np.ndarray) -> dict:
    """The rows `idx` of every column of a batch."""
    return {k: np.asarray(v)[idx] for k, v in batch.items()}


def n_rows(batch: Batch) -> int:
    return len(batch["text"]) if "text" in batch else len(next(iter(batch.values()), ()))


# --------------------------------------------------------------------------- cheap features

_DIGIT = re.compile(r"\d")
_CODE_MARKERS = ("```", "def ", "class ", "import ", "return ", "{", "};", "=>", "#include", "()")
_QUESTION_WORDS = ("what", "why", "how", "which", "who", "when", "where", "is ", "are ", "can ")
CHEAP_FEATURES = (
    "log_chars",
    "log_words",
    "log_digits",
    "digit_share",
    "code_markers",
    "question_mark",
    "question_word",
    "math_symbols",
    "lines",
    "choices",
    "log_context_words",
    "turn",
)


def cheap_features(batch: Batch) -> np.ndarray:
    """Per row, float64 features a router reads besides an embedding (see CHEAP_FEATURES):
    prompt length, digits, code markers, question form, history length and turn."""
    rows = []
    n = n_rows(batch)
    ctx_words = (
        np.asarray(batch["context_words"], np.float64)
        if "context_words" in batch
        else np.array([words(c) for c in contexts(batch)], np.float64)
    )
    turn = np.asarray(batch["turn"], np.float64) if "turn" in batch else np.ones(n)
    lp = prompt_words(batch)
    for i, text in enumerate(texts(batch)):
        low = text.lower()
        stripped = low.strip()
        digits = len(_DIGIT.findall(text))
        rows.append(
            (
                math.log1p(len(text)),
                math.log1p(lp[i]),
                math.log1p(digits),
                digits / max(len(text), 1),
                float(sum(low.count(m) for m in _CODE_MARKERS)),
                float("?" in text),
                float(stripped.startswith(_QUESTION_WORDS)),
                float(sum(text.count(c) for c in "=+*/^<>")),
                math.log1p(text.count("\n")),
                float(sum(f"\n{c}" in text or f"({c})" in text for c in "ABCD")),
                math.log1p(float(ctx_words[i])),
                float(turn[i]),
            )
        )
    out = np.array(rows, np.float64).reshape(n, len(CHEAP_FEATURES))
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
