"""Batches sized by tokens, for engines that pad a batch to its longest prompt.

With left padding every row of a batch costs as much prefill as the longest prompt in it. Sorting
the prompts by length and closing a batch when its padded size (rows x longest prompt) would pass
a token budget keeps that waste small, so a profiling run does less work for the same answers and
each measured TTFT reflects a prompt of about its own length rather than its longest neighbour's.
"""

from __future__ import annotations

from collections.abc import Sequence


def pack(lengths: Sequence[int], max_rows: int, max_tokens: int) -> list[list[int]]:
    """Indices into `lengths` grouped into batches: shortest first, each at most `max_rows` rows
    and `max_tokens` padded tokens (a prompt longer than the budget runs alone)."""
    if max_rows < 1 or max_tokens < 1:
        raise ValueError(f"max_rows and max_tokens must be >= 1, got {max_rows}, {max_tokens}")
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda k: (lengths[k], k)):
        # Sorted ascending: the newcomer is the batch's longest prompt.
        if current and (len(current) >= max_rows or lengths[i] * (len(current) + 1) > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
