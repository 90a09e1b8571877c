"""What a request must pass before it is parsed: the API key and the body size limit."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request
from starlette.requests import ClientDisconnect

from serve.protocol import APIError


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_key(request: Request, key_hashes: list[str]) -> None:
    """401 unless the Bearer token hashes to a configured key (no keys: open)."""
    if not key_hashes:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
            code="invalid_api_key",
        )
    digest = hash_key(token.strip())
    if not any(hmac.compare_digest(digest, k) for k in key_hashes):
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it (declared or read) exceeds `limit` bytes."""
    too_big = APIError(
        413, f"request body exceeds {limit} bytes", code="request_too_large", param=None
    )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    try:
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise too_big
    except ClientDisconnect:
        raise APIError(400, "client disconnected while sending the request") from None
    return bytes(body)
