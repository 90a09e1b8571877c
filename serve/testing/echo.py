"""A small OpenAI-compatible server on loopback: the stand-in "cloud" for tests, demo, benchmark.

`mode="echo"` answers `echo: <last user message>` (streamed word by word when asked);
`mode="fail"` answers HTTP 500 with an OpenAI-style error; `mode="hang"` never answers within any
sane timeout (it sleeps `hang_s`); `mode="trickle"` sends the status line at once and then one
byte every `trickle_s` (a body that never completes); `mode="drop"` starts a 200 answer and cuts
the connection after a few bytes. With `api_key` set it checks the Bearer key like the real API
and answers 401 otherwise. Its answers are not a model's: it exists to exercise the real HTTP
path (routing, streaming, retries, fallbacks) without a network.

    with EchoServer(mode="echo") as cloud:
        cloud.base_url  # http://127.0.0.1:<port>/v1

`python -m serve.testing.echo --port N [--mode echo|fail|hang|trickle|drop]` runs it in the
foreground.
"""

import argparse
import asyncio
import json
import threading
import time
import uuid
from typing import Any

from serve.app import free_port


def make_app(
    mode: str = "echo",
    api_key: str | None = None,
    hang_s: float = 3600.0,
    stopping: threading.Event | None = None,
    trickle_s: float = 20.0,
    answers: dict[str, str] | None = None,
):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.requests import ClientDisconnect

    app = FastAPI()
    stats = {"requests": 0}
    app.state.stats = stats

    def err(status: int, message: str, type_: str, code: str | None = None) -> JSONResponse:
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        return JSONResponse(body, status_code=status)

    async def pause(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (stopping and stopping.is_set()):
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def authorized(request: Request) -> bool:
        return api_key is None or request.headers.get("authorization") == f"Bearer {api_key}"

    @app.get("/v1/models")
    async def models(request: Request):
        if not authorized(request):
            return err(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        return {"object": "list", "data": [{"id": "echo", "object": "model", "owned_by": "echo"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        stats["requests"] += 1
        if not authorized(request):
            return err(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        if mode == "fail":
            return err(
                500, "The server had an error while processing your request.", "server_error"
            )
        try:
            body = await request.json()
        except ClientDisconnect:
            return Response(status_code=499)  # the caller gave up; nobody reads this
        if mode == "hang":  # until hang_s passes or the server stops
            await pause(hang_s)
        if mode == "trickle":

            async def trickle():
                deadline = time.monotonic() + hang_s
                while time.monotonic() < deadline and not (stopping and stopping.is_set()):
                    yield b" "
                    await pause(trickle_s)

            return StreamingResponse(trickle(), media_type="application/json")
        if mode == "drop":

            async def drop():
                yield b'{"id": "chatcmpl-'
                raise ConnectionAbortedError("echo server drops the connection")

            return StreamingResponse(drop(), media_type="application/json")
        model = body.get("model", "echo")
        user = [m for m in body.get("messages", []) if m.get("role") == "user"]
        content = user[-1]["content"] if user else ""
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        # a scripted answer for a known prompt (e.g. a model's published outcome), else the echo
        text = (answers or {}).get(content, f"echo: {content}")
        n_in = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        n_out = len(text.split())
        cid = "chatcmpl-echo" + uuid.uuid4().hex[:16]
        created = int(time.time())
        usage = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
        if not body.get("stream"):
            return {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }

        def event(delta: dict[str, Any], finish: str | None = None, **extra) -> str:
            chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(chunk)}\n\n"

        async def gen():
            yield event({"role": "assistant", "content": ""})
            pieces = text.split(" ")
            for i, piece in enumerate(pieces):
                yield event({"content": piece if i == 0 else " " + piece})
            yield event({}, "stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                yield (
                    "data: "
                    + json.dumps(
                        {
                            "id": cid,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                    + "\n\n"
                )
            yield "data: [DONE]\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream")

    return app


class EchoServer:
    """Runs :func:`make_app` under uvicorn in a daemon thread on 127.0.0.1; a context manager."""

    def __init__(
        self,
        mode: str = "echo",
        api_key: str | None = None,
        port: int | None = None,
        hang_s: float = 3600.0,
        trickle_s: float = 20.0,
        answers: dict[str, str] | None = None,
    ) -> None:
        import uvicorn

        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.stopping = threading.Event()
        self.app = make_app(mode, api_key, hang_s, self.stopping, trickle_s, answers)
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"echo-{mode}")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> int:
        return self.app.state.stats["requests"]

    def start(self) -> "EchoServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"echo server did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> "EchoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mode", choices=["echo", "fail", "hang", "trickle", "drop"], default="echo")
    ap.add_argument("--api-key-env", default=None, help="variable holding the key to require")
    args = ap.parse_args(argv)
    import os

    key = os.environ.get(args.api_key_env) if args.api_key_env else None
    port = args.port or free_port()
    print(f"echo server on http://127.0.0.1:{port}/v1 (mode {args.mode})", flush=True)
    uvicorn.run(
        make_app(args.mode, key),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
