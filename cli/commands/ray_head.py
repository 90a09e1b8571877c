"""`localroute ray start|stop`: a local Ray head for tools that join a running Ray, such as
Serve's own `serve run --address`.

A Ray that `serve run` starts by itself does not go through localroute/ray_runtime.py, so it
listens on every interface without token auth. This head is started by `init_ray`, as
`localroute serve` starts its own: 127.0.0.1 only, token auth (the token in a 0600 file), usage
stats off. It is held by a background process of ours, so `stop` ends exactly what `start` began
(`ray stop` would kill every Ray of this user). `start` prints the `export` lines that let another
process join it (`eval "$(localroute ray start)"`), never the token itself.

State (the holder's pid, its exports, its log) lives in a private folder:
$LOCALROUTE_RAY_STATE_DIR, else <tmp>/localroute-ray-<uid>.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from localroute.errors import ConfigError, LocalrouteError

DEFAULT_CONFIG = "configs/local.yaml"
STATE_ENV = "LOCALROUTE_RAY_STATE_DIR"
START_TIMEOUT_S = 180.0  # Ray's first start on a busy 2-core machine
STOP_TIMEOUT_S = 60.0
_MODULE = "cli.commands.ray_head"  # in the holder's command line: how `stop` knows it is ours


def _state_dir() -> Path:
    """The private folder holding the head's state (0700, this user's, not a link)."""
    default = Path(tempfile.gettempdir()) / f"localroute-ray-{os.getuid()}"
    path = Path(os.environ.get(STATE_ENV) or default)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise LocalrouteError(f"{path} must be a folder of this user with mode 0700 ({STATE_ENV})")
    return path


def _running(state: Path) -> dict | None:
    """The recorded head when its holder still runs, else None (a stale record is removed)."""
    import psutil

    record = state / "head.json"
    try:
        head = json.loads(record.read_text())
        if _MODULE in " ".join(psutil.Process(head["pid"]).cmdline()):
            return head
    except (OSError, ValueError, KeyError, psutil.Error):
        pass
    record.unlink(missing_ok=True)
    return None


def _exports(head: dict) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in head["env"].items())


def _guide(head: dict, state: Path, note: str) -> None:
    print(
        f"{note}: Ray head on 127.0.0.1 (loopback only, token auth, usage stats off), "
        f"pid {head['pid']}, log {state / 'head.log'}\n"
        f'  join it:  eval "$(localroute ray start)"; '
        f'serve run --address "$RAY_ADDRESS" configs/serve.yaml\n'
        f'  stop it:  eval "$(localroute ray stop)"  (also unsets these exports)',
        file=sys.stderr,
    )


def _start(args: argparse.Namespace) -> int:
    from cli.config import load_config

    cfg = load_config(args.config)  # errors here, in the foreground, not in the holder's log
    if cfg.ray.address:
        raise ConfigError(f"{args.config}: ray.address is set; a cluster has its own head")
    state = _state_dir()
    head = _running(state)
    if head is not None:
        sys.stdout.write(_exports(head))
        _guide(head, state, f"already running (config {head.get('config')})")
        return 0
    env = dict(os.environ)
    stale = env.get("RAY_AUTH_TOKEN_PATH")
    if stale and not Path(stale).is_file():  # a stopped head's export, still in this shell
        del env["RAY_AUTH_TOKEN_PATH"]
    hold = f"import sys; from {_MODULE} import _hold; _hold(sys.argv[1], sys.argv[2])"
    fd = os.open(state / "head.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as log:
        holder = subprocess.Popen(
            [sys.executable, "-c", hold, str(Path(args.config).resolve()), str(state)],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command and the terminal's Ctrl-C
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    while (head := _running(state)) is None or head["pid"] != holder.pid:
        if holder.poll() is not None or time.monotonic() > deadline:
            holder.kill()
            tail = (state / "head.log").read_text(errors="replace")[-3000:]
            raise LocalrouteError(f"the Ray head did not start:\n{tail}")
        time.sleep(0.2)
    sys.stdout.write(_exports(head))
    _guide(head, state, "started")
    return 0


def _stop(args: argparse.Namespace) -> int:
    import psutil

    state = _state_dir()
    head = _running(state)
    if head is None:
        print("no localroute Ray head is running", file=sys.stderr)
        return 0
    procs: list = []
    try:
        holder = psutil.Process(head["pid"])
        procs = holder.children(recursive=True)  # the fallback if the holder cannot stop Ray
        holder.terminate()  # the holder shuts Ray down and removes its token
        holder.wait(STOP_TIMEOUT_S)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        holder.kill()
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        proc.kill()
    (state / "head.json").unlink(missing_ok=True)
    sys.stdout.write("".join(f"unset {k}\n" for k in head["env"]))  # eval "$(... stop)"
    print(f"stopped the Ray head (pid {head['pid']})", file=sys.stderr)
    return 0


def _hold(config: str, state_dir: str) -> None:
    """The background holder: start Ray through ray_runtime, record how to join, wait for a
    signal, shut Ray down (its atexit hook then removes the token)."""
    from cli.config import load_config
    from localroute.ray_runtime import join_env, ray_session
    from serve.app import ray_env

    cfg = load_config(config)
    state = Path(state_dir)
    os.environ.update(ray_env(cfg.serve))  # Serve's proxy mode is chosen when Ray starts
    done = threading.Event()
    with ray_session(cfg.ray):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # after ray.init's own
            signal.signal(sig, lambda *_: done.set())
        record = state / "head.json"
        tmp = state / "head.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "config": config, "env": join_env()}, f)
        os.replace(tmp, record)
        print(f"Ray head up; join env {join_env()}", flush=True)
        try:
            while not done.wait(1.0):
                pass
        finally:
            record.unlink(missing_ok=True)
            print("shutting the Ray head down", flush=True)


def register(sub) -> None:
    r = sub.add_parser(
        "ray",
        help="start or stop a local Ray head (loopback, token auth) for `serve run --address`",
        description="A local Ray head started as `localroute serve` starts its own: 127.0.0.1 "
        "only, Ray token auth, usage stats off. `start` runs it in the background and prints "
        "the export lines that join it; `stop` ends it and prints the matching unset lines.",
    )
    acts = r.add_subparsers(dest="ray_command", required=True, metavar="ACTION")
    s = acts.add_parser(
        "start",
        help="start the head in the background; print `export` lines for `eval`",
        description="Start a loopback Ray head with token auth in the background and print "
        "the shell exports (RAY_ADDRESS, RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH, ...) another "
        'process needs to join it: eval "$(localroute ray start)". Its processes inherit this '
        "environment (e.g. LOCALROUTE_API_KEYS and OPENAI_API_KEY for `serve run`) and this "
        "directory. Prints the running head's exports if one is already up.",
    )
    s.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        help=f"YAML config: its ray: section (num_cpus, include_dashboard) and serve: proxy mode "
        f"(default {DEFAULT_CONFIG})",
    )
    s.set_defaults(func=_start)
    t = acts.add_parser(
        "stop",
        help="stop the head `localroute ray start` started; print `unset` lines for `eval`",
        description="Stop the head `localroute ray start` started (its holder shuts Ray down "
        "and removes the token), and nothing else; print the `unset` lines that clear its "
        'exports: eval "$(localroute ray stop)".',
    )
    t.set_defaults(func=_stop)
