"""Deterministic splits that never put one question on both sides.

A split is a pure function of (seed, normalised question text), so duplicate questions always
land together and a rebuild gives the same split on any machine.
"""

from __future__ import annotations

import hashlib
import re

DEFAULT_SEED = 20251125
DEFAULT_FRACTIONS = (("train", 0.6), ("val", 0.2), ("test", 0.2))

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive key under which two prompts count as the same question."""
    return _SPACE.sub(" ", text).strip().lower()


def hashed_split(
    text: str,
    seed: int = DEFAULT_SEED,
    fractions: tuple[tuple[str, float], ...] = DEFAULT_FRACTIONS,
) -> str:
    """The split of a question: a seeded hash of its normalised text mapped onto the fractions."""
    digest = hashlib.sha256(f"{seed}\x00{normalise(text)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, fraction in fractions:
        edge += fraction
        if u < edge:
            return name
    return fractions[-1][0]


# When copies of one question sit in several splits, the most held-out split keeps them all.
HOLDOUT_ORDER = ("test", "val", "dev", "train")


def resolve_leaks(texts: list[str], splits: list[str]) -> list[str]:
    """Move every copy of a question found in several splits to the most held-out of them.

    A source's test set thus stays whole, and no question is both trained and tested on.
    """
    seen: dict[str, set[str]] = {}
    for text, split in zip(texts, splits, strict=True):
        seen.setdefault(normalise(text), set()).add(split)
    rank = {name: i for i, name in enumerate(HOLDOUT_ORDER)}
    out = []
    for text, split in zip(texts, splits, strict=True):
        group = seen[normalise(text)]
        out.append(min(group, key=lambda s: rank.get(s, len(rank))) if len(group) > 1 else split)
    return out
