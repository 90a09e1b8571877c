"""What the ingress knows about a request before the policy decides: the parsed model name,
the router's features, live latency estimates, the local queue's wait, the conversation's last side.

Pure Python and numpy (no Ray), so it is unit-tested on its own and reused by the ingress. The
decision itself (eqs. 6-7 with the re-prefill of eq. 1 on a switch and the local queue wait,
then eqs. 11-12) is `localroute.core.policy.decide_one`, the one place a score becomes a
decision; it is re-exported here with its `Decision`.

* :func:`resolve_model` reads the OpenAI `model` field: `localroute` (the configured router and
  theta) or RouteLLM's `router-<name>-<theta>`, with an optional `-alpha<value>` suffix;
* :class:`LiveEstimates` keeps EWMAs of the RTT and bandwidth to the cloud deployment and of
  the local engine's seconds per token, and turns them into a `localroute.core` LatencyModel;
* :class:`LocalLoad` turns the local side's requests in flight into an expected wait;
* :class:`SessionStore` remembers, per conversation, which side answered last and how much
  context each side already holds (keyed by a session header, else by a hash of the prefix);

Token counts are whitespace words, as in seed 001 and in the examples routers are trained on
(:func:`localroute.routers.features.request_batch`, pyarrow-free).
"""

from __future__ import annotations

import dataclasses
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

from localroute.core.latency import LatencyModel
from localroute.core.policy import Decision, decide_one
from localroute.routers.features import request_batch
from serve.protocol import APIError

__all__ = [
    "Decision",
    "LiveEstimates",
    "LocalLoad",
    "Route",
    "SessionStore",
    "decide_one",
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


# --------------------------------------------------------------------------- live estimates


class Ewma:
    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.value: float | None = None
        self.n = 0

    def update(self, x: float) -> None:
        if not math.isfinite(x) or x <= 0:
            return
        self.value = x if self.value is None else self.weight * x + (1 - self.weight) * self.value
        self.n += 1


class LiveEstimates:
    """EWMAs of what the cost model needs, fed by measurements of real traffic and probes.

    A measured value replaces the prior's once it rests on `min_samples` observations."""

    def __init__(self, weight: float, min_transfer_bytes: int = 2048, min_samples: int = 1) -> None:
        self.min_samples = max(1, int(min_samples))
        self.rtt_s = Ewma(weight)  # to the cloud API, from probes: the link's delta
        self.cloud_bytes_s = Ewma(weight)  # response body bytes / transfer time: the link's B
        self.local_decode_s = Ewma(weight)  # local seconds per generated token: gamma_s
        self.local_prefill_s = Ewma(weight)  # local seconds per prompt token
        self.min_transfer_bytes = min_transfer_bytes
        self.last_probe = 0.0
        self._lock = threading.Lock()
        self._version = 0  # bumped by every observation; params() recomputes only then
        self._cached: tuple[int, int, LatencyModel] | None = None

    def observe_rtt(self, seconds: float) -> None:
        with self._lock:
            self.rtt_s.update(seconds)
            self._version += 1

    def observe_transfer(self, n_bytes: int, seconds: float) -> None:
        if n_bytes >= self.min_transfer_bytes and seconds > 0:
            with self._lock:
                self.cloud_bytes_s.update(n_bytes / seconds)
                self._version += 1

    def observe_local(
        self,
        tokens_in: int | None,
        ttft_s: float | None,
        tokens_out: int | None,
        decode_s: float | None,
    ) -> None:
        with self._lock:
            if tokens_in and ttft_s:
                self.local_prefill_s.update(ttft_s / tokens_in)
            if tokens_out and tokens_out > 1 and decode_s:
                self.local_decode_s.update(decode_s / (tokens_out - 1))
            self._version += 1

    def _measured(self, e: Ewma) -> float | None:
        return e.value if e.n >= self.min_samples else None

    def snapshot(self) -> dict[str, float | None]:
        return {
            "rtt_s": self.rtt_s.value,
            "cloud_bytes_s": self.cloud_bytes_s.value,
            "local_decode_s_per_token": self.local_decode_s.value,
            "local_prefill_s_per_token": self.local_prefill_s.value,
        }

    def current(self, prior: LatencyModel) -> LatencyModel:
        """`self.model(prior)`, recomputed only after a new observation."""
        cached = self._cached
        if cached is not None and cached[0] == self._version and cached[1] == id(prior):
            return cached[2]
        version = self._version
        model = self.model(prior)
        self._cached = (version, id(prior), model)
        return model

    def model(self, prior: LatencyModel) -> LatencyModel:
        """The prior with every measured parameter swapped in (unmeasured ones stay the prior's).

        Bandwidth is measured on the download; where the prior link is asymmetric the uplink
        keeps the prior's up/down ratio.
        """
        link, local = prior.link, prior.local
        rtt, bytes_s, decode = (
            self._measured(e) for e in (self.rtt_s, self.cloud_bytes_s, self.local_decode_s)
        )
        if rtt is not None:
            link = dataclasses.replace(link, overhead_s=rtt, rtt_s=rtt)
        if bytes_s is not None:
            bpt = link.bytes_per_token or 4.0
            down = bytes_s / bpt
            up = None
            if link.uplink_tokens_s is not None:
                up = down * link.uplink_tokens_s / link.bandwidth_tokens_s
            link = dataclasses.replace(link, bandwidth_tokens_s=down, uplink_tokens_s=up)
        if decode is not None:
            local = dataclasses.replace(
                local,
                decode_s_per_token=decode,
                prefill_s_per_token=self._measured(self.local_prefill_s) or local.prefill,
            )
        if link is prior.link and local is prior.local:
            return prior
        return dataclasses.replace(prior, link=link, local=local)


class LocalLoad:
    """The local side's queue as this ingress replica sees it, as an expected wait (seconds).

    `slots` requests run at once on the local side (replicas x concurrency); a request beyond
    them waits, on average, `queued / slots` service times. The service time is the EWMA of
    measured local requests once `min_samples` exist, else the caller's prior (the model's T_s).
    """

    def __init__(self, slots: int, weight: float = 0.2, min_samples: int = 3) -> None:
        self.slots = max(1, int(slots))
        self.inflight = 0
        self.service_s = Ewma(weight)
        self.min_samples = min_samples

    def started(self) -> None:
        self.inflight += 1

    def finished(self, seconds: float | None) -> None:
        self.inflight = max(0, self.inflight - 1)
        if seconds is not None:
            self.service_s.update(seconds)

    def wait_s(self, prior_service_s: float) -> float:
        queued = self.inflight + 1 - self.slots  # the new request counted
        if queued <= 0:
            return 0.0
        measured = self.service_s.value if self.service_s.n >= self.min_samples else None
        return queued / self.slots * (measured if measured is not None else prior_service_s)


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
