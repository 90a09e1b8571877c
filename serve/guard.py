"""What a request must pass before it is parsed: the API key, a JSON content type and the body
size limit."""

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


def check_json_type(request: Request) -> None:
    """415 unless the declared content type is JSON (`application/json`, or a `+json` type);
    a request that declares none is read as JSON (its body must still parse)."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise APIError(
            415,
            f"Content-Type {media[:100]!r} is not supported: send 'application/json'",
            code="unsupported_media_type",
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The JSON body: 415 unless its content type is JSON (check_json_type), 413 as soon as it
    (declared or read) exceeds `limit` bytes."""
    check_json_type(request)
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
