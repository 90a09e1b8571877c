"""The last stage of `localroute demo`: serve the router, hold a 3-turn conversation, shut down.

:func:`demo_stage` runs inside an already-started Ray. There is no real cloud model in the
demo: a loopback OpenAI-compatible echo server stands in for it, and the output says so.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from pathlib import Path
from typing import Any

CONVERSATION = [
    "What is photosynthesis, in one sentence?",
    "A farmer has 3 fields of 4.5 hectares each and harvests 7.2 tonnes of wheat per hectare. "
    "After selling 60% of the harvest, how many tonnes are left? Show each step.",
    "Put your two answers into a short bulleted list.",
]
HEADERS = ("x-localroute-decision", "x-localroute-p", "x-localroute-p-fused", "x-localroute-reason")


def demo_stage(cfg, out_dir: Path, router_artifact: Path | None = None) -> dict[str, Any]:
    """Serve `cfg`'s router on 127.0.0.1 (a free port), talk to it through the `openai` client,
    print each turn's decision headers, write `out_dir/serve_demo.json`, shut Serve down.

    `cfg` is the loaded config (its `serve:` section is used) or a `ServeConfig`.
    """
    import openai

    from serve.app import start, stop
    from serve.testing.echo import EchoServer

    s = getattr(cfg, "serve", cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    client_key = "sk-demo-" + secrets.token_hex(12)  # this run only; printed nowhere
    cloud_key = secrets.token_hex(16)
    result: dict[str, Any] = {"turns": []}
    with EchoServer(api_key=cloud_key) as cloud:
        stand_in_cloud = "echo-cloud-stand-in"
        # the configured cloud model is replaced by the echo: so is it in the declared stand-ins
        stand_ins = {
            k: (stand_in_cloud if v == s.cloud.model else v) for k, v in s.router.stand_ins.items()
        }
        s = dataclasses.replace(
            s,
            router=dataclasses.replace(s.router, stand_ins=stand_ins),
            host="127.0.0.1",
            port=0,
            access_log=False,
            cloud=dataclasses.replace(s.cloud, base_url=cloud.base_url, model=stand_in_cloud),
            local=dataclasses.replace(s.local, tiny_dir=str(out_dir / "models" / "tiny-decoder")),
        )
        env = {s.auth.api_keys_env: client_key, s.cloud.api_key_env: cloud_key}
        t0 = time.perf_counter()
        url = start(s, router_artifact=router_artifact, environ=env)
        router = str(router_artifact) if router_artifact else (s.router.artifact or s.router.name)
        print(f"== Ray Serve: OpenAI-compatible router at {url}/v1 (router: {router})")
        print(f"   up in {time.perf_counter() - t0:.1f}s; local model: {s.local.model_name}")
        print(
            f"   cloud: a loopback OpenAI-compatible echo server at {cloud.base_url} stands in "
            "for the cloud model; no real cloud is called"
        )
        result.update(url=url, router=router, cloud_stand_in=cloud.base_url)
        try:
            client = openai.OpenAI(base_url=url + "/v1", api_key=client_key, max_retries=0)
            messages: list[dict[str, str]] = []
            for i, question in enumerate(CONVERSATION, 1):
                messages.append({"role": "user", "content": question})
                raw = client.chat.completions.with_raw_response.create(
                    model="localroute",
                    messages=messages,
                    max_tokens=24,
                    extra_headers={"x-session-id": "demo-conversation"},
                )
                reply = raw.parse().choices[0].message.content or ""
                messages.append({"role": "assistant", "content": reply})
                h = {k: raw.headers.get(k) for k in HEADERS}
                if i == 1 and raw.headers.get("x-localroute-pairing"):
                    result["pairing"] = raw.headers["x-localroute-pairing"]
                    print(f"   {result['pairing']}")
                side = h["x-localroute-decision"]
                words = reply.split()
                first = " ".join(words[:10]) + (" ..." if len(words) > 10 else "")
                print(
                    f"   turn {i}: {side:<5} p={float(h['x-localroute-p']):.3f} "
                    f"p~={float(h['x-localroute-p-fused']):.3f}  {h['x-localroute-reason']}"
                )
                print(f'      {raw.parse().model}: "{first}"')
                result["turns"].append(
                    {
                        "turn": i,
                        **{k.removeprefix("x-localroute-"): v for k, v in h.items()},
                        "answer": reply,
                    }
                )
        finally:
            stop()
            print("   Serve shut down")
    (out_dir / "serve_demo.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
