"""Talking to Ray's job server: connect (waiting, within a deadline, for one still starting),
submit, follow the logs, wait for the end, and map the final status to an exit code.

Ray's SDK sends the cluster's token when RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or
RAY_AUTH_TOKEN_PATH) are set where this runs; `headers` adds others (e.g. a proxy's).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable

from localroute.jobs.settings import EXIT_STOPPED, SubmitError

# What the job server answers while its node's job agent is not up yet (Ray 2.60 job_head.py).
AGENT_NOT_READY = "No available agent to submit job"


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _quiet_ray_client_logs() -> None:
    """Keep the SDK's per-upload INFO lines and default-exclude notices out of the job's output."""
    import logging

    for name in (
        "ray._private.runtime_env",
        "ray.dashboard.modules.dashboard_sdk",  # these two set INFO on themselves
        "ray.dashboard.modules.job.sdk",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray._private.runtime_env.working_dir").setLevel(logging.ERROR)


def _poll(deadline: float, poll_s: float) -> bool:
    """Sleep until the next poll; False when the deadline has passed (no sleep then)."""
    left = deadline - time.monotonic()
    if left <= 0:
        return False
    time.sleep(min(poll_s, left))
    return True


def _refused_credentials(exc: BaseException) -> bool:
    from ray.exceptions import AuthenticationError

    text = str(exc)
    return isinstance(exc, AuthenticationError) or any(
        word in text for word in ("Unauthorized", "Forbidden", "status code 401", "status code 403")
    )


def connect(
    address: str, ready_timeout_s: float = 0.0, headers: dict | None = None, poll_s: float = 0.5
):
    """A JobSubmissionClient for `address` once the job server answers (its version and its job
    list, which the GCS behind it serves); polls for up to `ready_timeout_s`, else SubmitError."""
    from ray.job_submission import JobSubmissionClient

    _quiet_ray_client_logs()  # after the import: the SDK modules set their level when imported
    deadline = time.monotonic() + ready_timeout_s
    while True:
        try:
            client = JobSubmissionClient(address, headers=headers)
            client.list_jobs()
            return client
        except Exception as exc:  # refused, timed out, HTTP errors, auth errors
            if _refused_credentials(exc):  # waiting will not help
                raise SubmitError(
                    f"the Ray job server at {address} refused this client ({one_line(exc)}): "
                    "it needs the cluster's token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN "
                    "(or RAY_AUTH_TOKEN_PATH)"
                ) from exc
            if not _poll(deadline, poll_s):
                waited = f" within {ready_timeout_s:g} s" if ready_timeout_s else ""
                raise SubmitError(
                    f"cannot reach the Ray job server at {address}{waited} ({one_line(exc)})"
                ) from exc


def submit_job(client, agent_timeout_s: float = 60.0, poll_s: float = 0.5, **job) -> str:
    """client.submit_job(**job), again while the server says its job agent is not up yet (a
    head still starting), for up to `agent_timeout_s`; returns the job's id."""
    deadline = time.monotonic() + agent_timeout_s
    while True:
        try:
            return client.submit_job(**job)
        except Exception as exc:
            if AGENT_NOT_READY not in str(exc):
                raise
            if not _poll(deadline, poll_s):
                raise SubmitError(
                    f"the job server's agent was not up within {agent_timeout_s:g} s "
                    f"({one_line(exc)}); retry, or raise submit.agent_timeout_s"
                ) from exc


def follow(client, job_id: str, out: Callable[[str], None], poll_s: float = 0.5):
    """Stream the job's logs to stdout until it ends; returns (final status, job info)."""
    import asyncio

    printed = 0

    async def tail() -> None:
        nonlocal printed
        async for chunk in client.tail_job_logs(job_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()
            printed += len(chunk)

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the stream broke: poll instead, then print what was missed
        out(f"note: log stream ended early ({one_line(exc)}); polling the job status")
    wait_for_job(client, job_id, poll_s=poll_s)
    info = client.get_job_info(job_id)
    logs = client.get_job_logs(job_id)
    if len(logs) > printed:
        sys.stdout.write(logs[printed:])
        sys.stdout.flush()
    return info.status, info


def wait_for_job(client, job_id: str, timeout_s: float | None = None, poll_s: float = 1.0):
    """Poll until the job ends; returns its final JobStatus (TimeoutError after timeout_s)."""
    from ray.job_submission import JobStatus

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while (status := client.get_job_status(job_id)) not in (
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.STOPPED,
    ):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {status} after {timeout_s} s")
        time.sleep(poll_s)
    return status


def exit_code(status, driver_exit_code: int | None = None, message: str | None = None) -> int:
    """0 for SUCCEEDED, 3 for STOPPED; for FAILED the driver's exit code (from the job info, else
    from its message, "... failed with exit code N"), else 1."""
    name = getattr(status, "value", str(status))
    if name == "SUCCEEDED":
        return 0
    if name == "STOPPED":
        return EXIT_STOPPED
    if driver_exit_code:
        return driver_exit_code
    found = re.search(r"exit code (\d+)", message or "")
    return int(found.group(1)) if found and int(found.group(1)) else 1
