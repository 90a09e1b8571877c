"""Token streaming with SmolLM2's real tokenizer: multi-byte characters (accents, CJK, emoji) span
several byte-level BPE tokens, and no streamed chunk may carry half a character (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

PROMPT = "Repeat exactly, nothing else: café, naïve, Zürich, 東京タワー, 🙂🚀, ½ ≤ π."


def test_stream_never_splits_a_character(smollm2_dir: Path) -> None:
    from localroute.engines import make_engine
    from localroute.engines.base import GenerationRequest

    engine = make_engine("transformers", str(smollm2_dir), device="cpu")
    request = GenerationRequest([{"role": "user", "content": PROMPT}], max_tokens=48)
    chunks = list(engine.stream(request))
    text = "".join(chunks)
    assert len(chunks) > 3 and text.strip()
    assert all("\ufffd" not in c for c in chunks), chunks  # no half character in any chunk
    for c in chunks:
        c.encode("utf-8")  # each chunk is valid text on its own (no lone surrogate)
    (whole,) = engine.generate([request])
    assert text == whole.text  # the stream is the same greedy answer, cut at character bounds
    # the answer really exercised multi-byte characters (the model echoes some of them)
    assert any(ord(ch) > 127 for ch in text), text
    engine.close()
