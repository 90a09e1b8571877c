"""Engines on a real (random-weight) Qwen2: transformers directly, and the OpenAI client against a
real OpenAI-compatible HTTP server on loopback that streams the same model's tokens."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from localroute.engines import Engine, GenerationRequest, make_engine

pytestmark = pytest.mark.timeout(240)


def _req(text: str, max_tokens: int = 6, **kw) -> GenerationRequest:
    return GenerationRequest([{"role": "user", "content": text}], max_tokens=max_tokens, **kw)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from localroute.models.tiny import build_tiny_decoder

    return str(build_tiny_decoder(tmp_path_factory.mktemp("models") / "tiny"))


@pytest.fixture(scope="module")
def hf(tiny):
    engine = make_engine("transformers", tiny, device="cpu")
    yield engine
    engine.close()


def test_transformers_batch_is_timed_per_request(hf):
    assert isinstance(hf, Engine)
    prompts = ["hi", "what is two plus two, in words please?", "x " * 40]
    gens = hf.generate([_req(p) for p in prompts])
    for prompt, g in zip(prompts, gens, strict=True):
        assert g.error is None
        # The chat template is applied: the prompt's token count includes its markup.
        templated = hf.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        assert g.tokens_in == len(hf.tokenizer(templated, add_special_tokens=False)["input_ids"])
        assert 1 <= g.tokens_out <= 6
        assert 0 < g.ttft_s <= g.latency_s
        assert g.tpot_s is None or g.tpot_s > 0
        assert sum(s.tokens for s in g.spans) == g.tokens_in + g.tokens_out
    assert gens[0].tokens_in < gens[1].tokens_in < gens[2].tokens_in
    # Greedy decoding is deterministic; batching does not change an answer.
    assert hf.generate([_req(prompts[1])])[0].text == gens[1].text


def test_transformers_stream_matches_generate(hf):
    request = _req("tell me a story", max_tokens=8)
    assert "".join(hf.stream(request)) == hf.generate([request])[0].text


def test_sampling_is_seeded(hf):
    a = hf.generate([_req("seeded", max_tokens=8, temperature=1.0, seed=7)])[0].text
    b = hf.generate([_req("seeded", max_tokens=8, temperature=1.0, seed=7)])[0].text
    assert a == b


def test_prompt_past_the_context_is_truncated_not_an_error(hf):
    limit = hf.lm.config.max_position_embeddings
    gens = hf.generate([_req("fine"), _req("word " * limit)])
    assert gens[0].error is None and gens[0].tokens_out >= 1
    assert "truncated_from" not in gens[0].extra
    long = gens[1]
    assert long.error is None and long.tokens_out >= 1 and long.latency_s > 0
    assert long.extra["truncated_from"] > limit >= long.tokens_in + long.tokens_out
    # A window smaller than max_tokens still leaves half of it to the prompt.
    ids, cut = hf._tokenize([_req("word " * limit)], max_tokens=limit)
    enc, max_new = hf._pad(ids, max_tokens=limit)
    assert enc["input_ids"].shape[1] == limit // 2 and max_new == limit - limit // 2
    assert cut[0] > limit


def test_pack_sizes_batches_by_tokens():
    from localroute.engines.batching import pack

    lengths = [50, 10, 300, 12, 48, 11]
    batches = pack(lengths, max_rows=2, max_tokens=120)
    assert sorted(i for b in batches for i in b) == list(range(6))  # each once
    assert batches == [[1, 5], [3, 4], [0], [2]]  # shortest first; 2 x 300 tokens > 120
    for b in batches:
        assert len(b) <= 2 and (len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 120)
    assert pack([], 4, 100) == []
    with pytest.raises(ValueError, match="max_rows and max_tokens must be >= 1"):
        pack([1], 0, 100)


def test_requests_are_packed_by_length_and_answered_in_order(tiny):
    """Issue 12: batches sized by tokens. Prompts of mixed lengths share a forward pass with
    prompts of about their own length (the same start instant), and answers keep the caller's
    order."""
    engine = make_engine("transformers", tiny, device="cpu", max_batch_size=2)
    prompts = ["x " * 60, "a", "x " * 61, "b", "x " * 200]
    gens = engine.generate([_req(p, max_tokens=3) for p in prompts])
    alone = [engine.generate([_req(p, max_tokens=3)])[0] for p in prompts]
    assert [g.tokens_in for g in gens] == [g.tokens_in for g in alone]
    assert [g.text for g in gens] == [g.text for g in alone]  # greedy: packing changes nothing
    start = [g.spans[0].start for g in gens]
    assert start[1] == start[3] and start[0] == start[2]  # the short pair, the long pair
    assert len({start[1], start[0], start[4]}) == 3  # the longest runs alone (max 2 rows)
    with pytest.raises(ValueError, match="max_batch_tokens must be an integer >= 1"):
        make_engine("transformers", tiny, device="cpu", max_batch_tokens=0)


class _ChatServer(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible /v1/chat/completions over the tiny model, streamed (SSE)."""

    engine = None
    key = None

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802 (http.server's name)
        if self.headers.get("Authorization") != f"Bearer {self.key}":
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "bad key"}}')
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = GenerationRequest(body["messages"], max_tokens=body["max_tokens"])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        tok = self.engine.tokenizer
        text = ""
        for delta in self.engine.stream(request):
            text += delta
            self._send({"choices": [{"index": 0, "delta": {"content": delta}}]})
        prompt = tok.apply_chat_template(
            body["messages"], tokenize=False, add_generation_prompt=True
        )
        n_in = len(tok(prompt, add_special_tokens=False)["input_ids"])
        n_out = len(tok(text, add_special_tokens=False)["input_ids"])
        usage = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
        self._send({"choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")

    def _send(self, chunk: dict) -> None:
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m", **chunk}
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()


@pytest.fixture(scope="module")
def server(hf):
    handler = type("Handler", (_ChatServer,), {"engine": hf, "key": "sekrit"})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    thread.join()


def test_openai_engine_streams_and_times(server, hf, monkeypatch):
    monkeypatch.setenv("LR_TEST_KEY", "sekrit")
    engine = make_engine("openai", "tiny", base_url=server, api_key_env="LR_TEST_KEY")
    requests = [_req("hello there", max_tokens=5), _req("and again", max_tokens=5)]
    gens = engine.generate(requests)
    for request, g in zip(requests, gens, strict=True):
        local = hf.generate([request])[0]
        assert g.error is None
        assert (g.text, g.tokens_in) == (local.text, local.tokens_in)
        assert g.tokens_out > 0
        assert 0 < g.ttft_s < g.latency_s
        assert g.spans == []  # a remote endpoint's work is not observable here
    assert "".join(engine.stream(requests[0])) == gens[0].text
    engine.close()


def test_openai_engine_reads_the_key_from_the_named_variable(server, monkeypatch):
    monkeypatch.setenv("LR_TEST_KEY", "wrong")
    engine = make_engine("openai", "tiny", base_url=server, api_key_env="LR_TEST_KEY")
    (g,) = engine.generate([_req("hello")])
    assert g.error and "401" in g.error and g.latency_s is None
    engine.close()


def test_unknown_engine_is_named():
    with pytest.raises(ValueError, match="unknown engine 'nope'"):
        make_engine("nope", "m")
