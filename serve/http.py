"""The FastAPI application the router ingress serves: OpenAI-style errors for routing faults
and for anything unhandled (never a traceback), and the ids a response carries."""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.protocol import error_body, new_id

log = logging.getLogger("ray.serve")

fastapi_app = FastAPI(title="localroute", docs_url=None, redoc_url=None, openapi_url=None)


@fastapi_app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return JSONResponse(
        error_body(str(exc.detail), "invalid_request_error", code), status_code=exc.status_code
    )


@fastapi_app.exception_handler(Exception)
async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled %s in %s", type(exc).__name__, request.url.path)
    return JSONResponse(error_body("internal error", "server_error"), status_code=500)


def replica_id() -> str:
    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # outside a Serve replica
        return "local"


def request_id(request: Request) -> str:
    """Serve's proxy puts exactly one `x-request-id` on the request and on the response (the
    client's own, else a fresh one); the response id carries it."""
    return request.headers.get("x-request-id") or new_id()[len("chatcmpl-") :]
