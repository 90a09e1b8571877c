"""`localroute serve`: the OpenAI-compatible router on Ray Serve, in the foreground."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import threading

DEFAULT_CONFIG = "configs/local.yaml"


def _serve(args: argparse.Namespace) -> int:
    from cli.config import load_config
    from localroute.ray_runtime import ray_session
    from serve.app import ray_env, start, stop

    cfg = load_config(args.config)
    s = cfg.serve
    if args.throughput_optimized:
        s = dataclasses.replace(s, throughput_optimized=True)
    os.environ.update(ray_env(s))  # Serve's proxy mode is chosen when Ray starts
    done = threading.Event()
    with ray_session(cfg.ray):
        # SIGTERM (a pod stopping, `kill`) shuts down as cleanly as Ctrl-C; installed after
        # ray.init, which sets a handler of its own.
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        url = start(
            s,
            host=args.host,
            port=args.port,
            router_artifact=args.router_artifact,
            cloud_base_url=args.cloud_base_url,
            cloud_model=args.cloud_model,
        )
        router = args.router_artifact or s.router.artifact or s.router.name
        cloud = f"{args.cloud_model or s.cloud.model} at {args.cloud_base_url or s.cloud.base_url}"
        print(f"serving {url}/v1/chat/completions (router {router})")
        print(f"   local: {s.local.model_name} ({s.local.engine}); cloud: {cloud}")
        print("   Ctrl-C stops", flush=True)
        try:
            while not done.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            print("shutting Serve down", flush=True)
            stop()
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="run the OpenAI-compatible router (Ray Serve) until interrupted",
        description="Start Ray (or join the config's cluster), deploy the router ingress with "
        "its local and cloud model deployments, and serve the OpenAI API on the config's host "
        "(127.0.0.1 unless configured otherwise) until Ctrl-C or SIGTERM. API keys come from "
        "serve.auth.api_keys or the variable named by serve.auth.api_keys_env.",
    )
    p.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})"
    )
    p.add_argument("--host", help="override serve.host (default loopback)")
    p.add_argument("--port", type=int, help="override serve.port (0: a free port)")
    p.add_argument("--router-artifact", help="serve this trained router artifact directory")
    p.add_argument("--cloud-base-url", help="override serve.cloud.base_url (an OpenAI-style API)")
    p.add_argument("--cloud-model", help="override serve.cloud.model")
    p.add_argument(
        "--throughput-optimized",
        action="store_true",
        help="Serve's throughput-optimized proxy (HAProxy, direct ingress): lower latency and "
        "higher throughput; set before Ray starts (serve.throughput_optimized)",
    )
    p.set_defaults(func=_serve)
