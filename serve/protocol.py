"""The OpenAI chat-completions wire format: request validation, responses, SSE chunks, errors.

Every error a client can see is an OpenAI-style JSON body `{"error": {"message", "type",
"param", "code"}}` with a fitting status code; no message ever carries a traceback or a key.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

_ROLES = {"system", "developer", "user", "assistant", "tool"}


class APIError(Exception):
    """An error with its HTTP status and OpenAI error fields; safe to show the client."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param)


def error_body(
    message: str, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass
class ChatRequest:
    """A validated chat-completions request (only the fields the router acts on are typed)."""

    model: str
    messages: list[dict[str, str]]
    stream: bool = False
    max_tokens: int | None = None
    temperature: float = 0.0
    seed: int | None = None
    include_usage: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The plain-data form sent to a model deployment."""
        return {
            "messages": self.messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
        }


def _text_content(content: Any, where: str) -> str:
    """Message content as text: a string, or a list of `{"type": "text", "text": ...}` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise APIError(400, f"{where}[{i}]: only text content parts are supported")
            text = part.get("text")
            if not isinstance(text, str):
                raise APIError(400, f"{where}[{i}].text must be a string", param=where)
            parts.append(text)
        return "".join(parts)
    if content is None:  # an empty prompt would be sent on: say so instead
        raise APIError(400, f"{where} must not be null", param=where)
    raise APIError(400, f"{where} must be a string or a list of text parts", param=where)


def _unsupported(body: dict[str, Any]) -> None:
    """400 for what the router cannot honour on both sides: several choices, tools, formats,
    log probabilities (README, "Online routing", lists these and the fields it ignores)."""
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n != 1):
        raise APIError(400, "'n' must be 1: the router returns exactly one choice", param="n")
    for name in ("tools", "functions"):
        if body.get(name):
            raise APIError(
                400, f"'{name}' is not supported: the router serves text chat only", param=name
            )
    if body.get("tool_choice") not in (None, "none"):
        raise APIError(400, "'tool_choice' is not supported without tools", param="tool_choice")
    if body.get("logprobs") not in (None, False):
        raise APIError(
            400,
            "'logprobs' is not supported: the local model's answers carry no log probabilities",
            param="logprobs",
        )
    if body.get("top_logprobs") is not None:
        raise APIError(
            400, "'top_logprobs' is not supported (nor is 'logprobs')", param="top_logprobs"
        )
    fmt = body.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
        raise APIError(
            400,
            '\'response_format\' is not supported (only {"type": "text"}): the local model '
            "cannot guarantee JSON output",
            param="response_format",
        )


def parse_chat_request(raw: bytes, *, max_messages: int, max_tokens_limit: int) -> ChatRequest:
    """Validate a request body; raises APIError(400) naming the offending field."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise APIError(400, f"request body is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(body, dict):
        raise APIError(400, "request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise APIError(400, "'model' is required and must be a string", param="model")
    messages = body.get("messages")
    if messages is None:
        raise APIError(400, "'messages' is required", param="messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "'messages' must be a non-empty list", param="messages")
    if len(messages) > max_messages:
        raise APIError(400, f"too many messages (at most {max_messages})", param="messages")
    clean = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise APIError(400, f"{where} must be an object", param=where)
        role = m.get("role")
        if role not in _ROLES:
            raise APIError(400, f"{where}.role must be one of {sorted(_ROLES)}", param=where)
        if "content" not in m:
            raise APIError(400, f"{where}.content is required", param=f"{where}.content")
        clean.append({"role": role, "content": _text_content(m["content"], where + ".content")})
    if clean[-1]["role"] != "user":
        raise APIError(400, "the last message must come from the user", param="messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise APIError(400, "'stream' must be a boolean", param="stream")
    max_tokens = None
    for name in ("max_tokens", "max_completion_tokens"):  # both checked; the newer one wins
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise APIError(400, f"'{name}' must be a positive integer", param=name)
        if value > max_tokens_limit:
            raise APIError(400, f"'{name}' must be <= {max_tokens_limit}", param=name)
        max_tokens = value
    _unsupported(body)
    temperature = body.get("temperature", 0.0)
    if temperature is None:
        temperature = 0.0
    if not isinstance(temperature, int | float) or isinstance(temperature, bool):
        raise APIError(400, "'temperature' must be a number", param="temperature")
    if not 0.0 <= float(temperature) <= 2.0:
        raise APIError(400, "'temperature' must be in [0, 2]", param="temperature")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise APIError(400, "'seed' must be an integer", param="seed")
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise APIError(400, "'stream_options' must be an object", param="stream_options")
    return ChatRequest(
        model=model,
        messages=clean,
        stream=stream,
        max_tokens=max_tokens,
        temperature=float(temperature),
        seed=seed,
        include_usage=bool(opts.get("include_usage", False)),
    )


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def completion(
    cid: str, model: str, text: str, tokens_in: int | None, tokens_out: int | None, finish: str
) -> dict[str, Any]:
    usage = None
    if tokens_in is not None and tokens_out is not None:
        usage = {
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        }
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        ],
        "usage": usage,
    }


def chunk(
    cid: str,
    model: str,
    delta: dict[str, Any],
    finish: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def model_list(ids: list[str], router: Any, router_source: str | None = None) -> dict[str, Any]:
    """`GET /v1/models`: every model name the router answers to, each naming the router artifact
    behind it (path and fingerprint: the artifact the evaluation reported on)."""
    now = int(time.time())
    served = {
        "router": router.name,
        "artifact": str(router_source) if router_source else None,
        "fingerprint": getattr(router, "fingerprint", None),
        # why its p carries no ranking, when train found so (None: it beat random on val)
        "degenerate": (getattr(router, "info", None) or {}).get("degenerate"),
    }
    return {
        "object": "list",
        "data": [
            {"id": i, "object": "model", "created": now, "owned_by": "localroute", **served}
            for i in ids
        ],
    }
