"""What the ingress reads from a request before the controller decides: the parsed model name,
the router's features, the token estimate for the context window, the conversation's last side.

Pure Python and numpy (no Ray), so it is unit-tested on its own. The decision itself is
`localroute.core.controller.RouteController` (live estimates, queue wait and target tracker in
`localroute.core.live`), the code the report's as-deployed replay runs too.

* :func:`resolve_model` reads the OpenAI `model` field: `localroute` (the configured router and
  theta) or RouteLLM's `router-<name>-<theta>`, with an optional `-alpha<value>` suffix;
* :class:`SessionStore` remembers, per conversation, which side answered last and how much
  context each side already holds (keyed by a session header, else by a hash of the prefix);

Token counts are whitespace words, as in seed 001 and in the examples routers are trained on
(:func:`localroute.routers.features.request_batch`, pyarrow-free).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from localroute.routers.features import request_batch
from serve.protocol import APIError

__all__ = [
    "Route",
    "SessionStore",
    "estimated_tokens",
    "features",
    "resolve_model",
    "router_batch",
]

DEFAULT_MODEL = "localroute"
UNTRAINED = ("random", "always-local", "always-cloud")  # usable by name without an artifact

_MODEL_RE = re.compile(
    r"^router-(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*?)-(?P<theta>(?:0|1)(?:\.\d+)?|\.\d+)"
    r"(?:-alpha(?P<alpha>\d+(?:\.\d+)?(?:[eE]-?\d+)?))?$"
)


@dataclass(frozen=True)
class Route:
    """What the `model` field asks for: which router, and theta/alpha overrides (None: config)."""

    router: str
    theta: float | None = None
    alpha: float | None = None


def resolve_model(model: str, served: str) -> Route:
    """`localroute` or `router-<name>-<theta>[-alpha<a>]`; anything else is a 404."""
    if model == DEFAULT_MODEL:
        return Route(served)
    m = _MODEL_RE.match(model)
    if m:
        name, theta = m["name"], float(m["theta"])
        if name == served or name in UNTRAINED:
            if not 0.0 <= theta <= 1.0:
                raise APIError(400, f"theta in {model!r} must be in [0, 1]", param="model")
            alpha = float(m["alpha"]) if m["alpha"] is not None else None
            return Route(name, theta, alpha)
    raise APIError(
        404,
        f"The model {model!r} does not exist; use {DEFAULT_MODEL!r} or "
        f"'router-{served}-<theta>' (theta in [0, 1])",
        type="invalid_request_error",
        code="model_not_found",
        param="model",
    )


def model_name_ids(router, untrained: tuple[str, ...]) -> list[str]:
    """The `router-<name>-<theta>` ids that resolve: theta on p alone, in [0, 1] (the served
    router's threshold on its calibrated p, chosen on val before alpha; else 0.5)."""
    t = (router.info.get("alpha") or {}).get("p_threshold", router.threshold)
    if not (isinstance(t, int | float) and 0.0 <= t <= 1.0):
        t = 0.5
    theta = f"{t:.4f}".rstrip("0").rstrip(".") or "0"
    names = [router.name, *(n for n in untrained if n != router.name)]
    return [f"router-{n}-{theta}" for n in names]


def words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class Features:
    """What the router and the cost model read from a request: the library's one-row router
    batch for its last user turn (prompt and history apart, as routers are trained), and the
    word counts the cost model uses."""

    batch: dict[str, np.ndarray]
    prompt_words: int
    context_words: int
    n_user_turns: int

    @property
    def text(self) -> str:
        return str(self.batch["text"][0])


def features(messages: list[dict[str, str]]) -> Features:
    b = request_batch(messages)
    return Features(b, int(b["prompt_words"][0]), int(b["context_words"][0]), int(b["turn"][0]))


def router_batch(f: Features, task: str) -> dict[str, np.ndarray]:
    return {**f.batch, "task": np.array([task], dtype=object)}


def estimated_tokens(messages: list[dict[str, str]], max_new_tokens: int) -> int:
    """A generous token count of a conversation plus its reply, without a tokenizer: the larger
    of 4/3 tokens per word and one per 4 characters, 8 per message for the chat template."""
    chars = sum(len(m["content"]) for m in messages)
    n_words = sum(words(m["content"]) for m in messages)
    body = max(math.ceil(n_words * 4 / 3), math.ceil(chars / 4))
    return body + 8 * len(messages) + max_new_tokens


# --------------------------------------------------------------------------- sessions


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, separators=(",", ":")).encode()).hexdigest()[:32]


def prefix_key(messages: list[dict[str, str]]) -> str:
    """Key of a conversation as it stood before its last user message."""
    return "h:" + _digest([[m["role"], m["content"].strip()] for m in messages[:-1]])


def continuation_key(messages: list[dict[str, str]], reply: str) -> str:
    """The key the next turn will look up: this turn's messages plus the reply, as sent back."""
    convo = [[m["role"], m["content"].strip()] for m in messages]
    return "h:" + _digest([*convo, ["assistant", reply.strip()]])


def session_key(session_id: str) -> str:
    return "s:" + _digest(session_id)


@dataclass
class SessionState:
    side: str  # "local" | "cloud": who answered the last turn
    context_words: int  # C_t after that turn (prompt + reply included)
    updated: float


class SessionStore:
    """A bounded LRU of conversations with a TTL; thread-safe (the ingress is async, but the
    router scores in threads)."""

    def __init__(self, max_sessions: int = 100_000, ttl_s: float = 3600.0) -> None:
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self._d: OrderedDict[str, SessionState] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> SessionState | None:
        with self._lock:
            st = self._d.get(key)
            if st is None:
                return None
            if time.monotonic() - st.updated > self.ttl_s:
                del self._d[key]
                return None
            self._d.move_to_end(key)
            return st

    def put(self, key: str, side: str, context_words: int) -> None:
        with self._lock:
            self._d[key] = SessionState(side, context_words, time.monotonic())
            self._d.move_to_end(key)
            while len(self._d) > self.max_sessions:
                self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)
