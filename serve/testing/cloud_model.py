"""The cloud model as a Serve deployment: `CloudClient` behind a handle and an HTTP route.

The router ingress calls the cloud API in its own process (serve/cloud_client.py), which saves
a Ray hop per request. This deployment wraps the same client for whoever wants the cloud side as
a deployment of its own: `generate`, streaming `stream` and `probe()` through a handle, and
`__call__`, the OpenAI route served directly (the benchmark's "deployment" baseline). Faults,
retries and the one deadline per request are the client's.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from serve.cloud_client import CloudClient, Secret
from serve.config import CloudModelConfig

__all__ = ["CloudModel", "Secret"]


@serve.deployment(name="CloudModel")
class CloudModel:
    def __init__(self, cfg: CloudModelConfig, api_key: Secret | None = None) -> None:
        key = os.environ.get(cfg.api_key_env) or (api_key.reveal() if api_key else "")
        self.cfg = cfg
        self.cloud = CloudClient(cfg, key)
        self.client = self.cloud.client

    async def generate(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.cloud.generate(payload)

    async def stream(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        async for item in self.cloud.stream(payload):
            yield item

    async def probe(self) -> float | None:
        return await self.cloud.probe()

    async def __call__(self, request) -> Any:
        """The OpenAI route served by this deployment alone (no router): for benchmarks."""
        from starlette.responses import JSONResponse

        from serve.protocol import completion, error_body, new_id

        try:
            body = json.loads(await request.body())
            payload = {k: body.get(k) for k in ("messages", "max_tokens", "temperature", "seed")}
        except (ValueError, AttributeError):
            return JSONResponse(error_body("invalid JSON", "invalid_request_error"), 400)
        out = await self.generate(payload)
        if "error" in out:
            return JSONResponse(error_body(out["error"]["message"], "upstream_error"), 502)
        return JSONResponse(
            completion(
                new_id(),
                out["model"],
                out["text"],
                out["tokens_in"],
                out["tokens_out"],
                out["finish_reason"],
            )
        )
