"""`localroute serve`: the OpenAI-compatible router on Ray Serve, in the foreground."""

from __future__ import annotations

import argparse
import signal
import threading

DEFAULT_CONFIG = "configs/local.yaml"


def _serve(args: argparse.Namespace) -> int:
    from cli.config import load_config
    from localroute.ray_runtime import ray_session
    from serve.app import start, stop

    cfg = load_config(args.config)
    done = threading.Event()
    with ray_session(cfg.ray):
        # SIGTERM (a pod stopping, `kill`) shuts down as cleanly as Ctrl-C; installed after
        # ray.init, which sets a handler of its own.
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        url = start(
            cfg.serve,
            host=args.host,
            port=args.port,
            router_artifact=args.router_artifact,
        )
        s = cfg.serve
        print(f"serving {url}/v1/chat/completions (router {s.router.artifact or s.router.name})")
        print(f"   local: {s.local.model_name} ({s.local.engine}); cloud: {s.cloud.model}")
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
    p.set_defaults(func=_serve)
