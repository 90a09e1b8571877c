"""State the ingress replicas share: metrics for all of them, and the conversations' last side.

`RouterState` is a one-replica Serve deployment of the application (its lifetime is the app's:
nothing detached to clean up). Each ingress replica keeps a `SharedState`:

* metrics are recorded in the replica (no wait) and shipped in batches every `flush_s`; the
  store replays them into one registry, so `GET /metrics` on any replica is the sum over
  replicas and never goes backwards (events not yet shipped by another replica show up within
  `flush_s`);
* sessions (which side answered last, the context it holds) are written to a local cache and
  shipped to the store at once (puts that arrive while one is in flight go in the next call);
  a lookup by session id asks the store (another replica may have served the last turn), a
  lookup by prefix hash (content-addressed, never stale) asks the local cache first.

When the store cannot be reached the replica carries on alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ray import serve

from serve.decision import SessionStore
from serve.metrics import Metrics

log = logging.getLogger("ray.serve")


@serve.deployment(name="RouterState", num_replicas=1, max_ongoing_requests=1024)
class RouterState:
    def __init__(self, max_sessions: int, ttl_s: float) -> None:
        self.metrics = Metrics(export_ray=False)
        self.sessions = SessionStore(max_sessions, ttl_s)

    def push(self, events: list, sessions: list[tuple[str, str, int]]) -> None:
        self.metrics.replay(events)
        for key, side, context in sessions:
            self.sessions.put(key, side, context)

    def render(self) -> bytes:
        return self.metrics.render()

    def session(self, key: str) -> tuple[str, int] | None:
        st = self.sessions.get(key)
        return (st.side, st.context_words) if st else None

    def n_sessions(self) -> int:
        return len(self.sessions)


class SharedState:
    """The ingress replica's side of `RouterState` (handle None: this replica alone)."""

    def __init__(self, handle, max_sessions: int, ttl_s: float, flush_s: float = 0.2) -> None:
        self.handle = handle
        self.metrics = Metrics(share=handle is not None)
        self.sessions = SessionStore(max_sessions, ttl_s)
        self.flush_s = flush_s
        self._session_puts: list[tuple[str, str, int]] = []
        self._task: asyncio.Task | None = None
        self._soon: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    def ensure_flusher(self) -> None:
        if self.handle is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flusher())

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    async def flush(self) -> bool:
        if self.handle is None:
            return False
        async with self._lock:
            events, puts = self.metrics.take(), self._session_puts
            self._session_puts = []
            if not events and not puts:
                return True
            try:
                await asyncio.wait_for(self.handle.push.remote(events, puts), 5.0)
                return True
            except Exception as exc:  # the store is down: keep what it missed for next time
                log.warning("router state unreachable (%s)", type(exc).__name__)
                if self.metrics.pending is not None:
                    self.metrics.pending[:0] = events
                self._session_puts[:0] = puts
                return False

    def put_session(self, key: str, side: str, context_words: int) -> None:
        self.ensure_flusher()
        self.sessions.put(key, side, context_words)
        if self.handle is not None:
            self._session_puts.append((key, side, context_words))
            if self._soon is None:  # ship it now (coalesced): the next turn may go elsewhere
                self._soon = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        try:
            while self._session_puts and await self.flush():
                pass
        finally:
            self._soon = None

    async def session(self, key: str, *, shared_first: bool) -> tuple[str, int] | None:
        """(side, context words) of a conversation's last turn, or None."""
        self.ensure_flusher()
        local = self.sessions.get(key)
        if self.handle is None or (local is not None and not shared_first):
            return (local.side, local.context_words) if local else None
        with contextlib.suppress(Exception):
            found = await asyncio.wait_for(self.handle.session.remote(key), 1.0)
            if found is not None:
                return tuple(found)
        return (local.side, local.context_words) if local else None

    async def render(self) -> tuple[bytes, str]:
        """The metrics of every replica (from the store), else this replica's alone."""
        self.ensure_flusher()
        if await self.flush():
            with contextlib.suppress(Exception):
                return await asyncio.wait_for(self.handle.render.remote(), 5.0), "all"
        return self.metrics.render(), "replica"

    async def n_sessions(self) -> int:
        with contextlib.suppress(Exception):
            if self.handle is not None:
                return await asyncio.wait_for(self.handle.n_sessions.remote(), 1.0)
        return len(self.sessions)
