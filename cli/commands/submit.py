"""`localroute submit {profile,train,evaluate,data}`: run a job on a Ray cluster."""

from __future__ import annotations

import argparse
import shlex

_WHAT = {
    "profile": "profile models across the config's hardware pools (localroute profile)",
    "train": "train the routers (localroute train)",
    "evaluate": "evaluate routers and costs (localroute evaluate)",
    "data": "build the outcome table into the config's data.out (localroute data build)",
}


def _submit(args: argparse.Namespace) -> int:
    from cli.config import load_config
    from localroute.submit import submit

    return submit(
        args.kind,
        args.config,
        address=args.address,
        wait=args.wait,
        job_args=shlex.split(args.job_args or ""),
        submission_id=args.submission_id,
        load_config=load_config,  # every section is checked here, before anything is sent
    )


def register(sub) -> None:
    s = sub.add_parser(
        "submit",
        help="run a job on a Ray cluster through its job server",
        description="Validate the config here, upload the project as the job's working_dir and "
        "run the job on the cluster (Ray's JobSubmissionClient). With --wait, stream its logs; "
        "the exit code follows its final status (SUCCEEDED 0, FAILED the driver's code or 1, "
        "STOPPED 3).",
    )
    kinds = s.add_subparsers(dest="kind", required=True, metavar="JOB")
    from localroute.submit import JOB_KINDS

    for kind in JOB_KINDS:
        k = kinds.add_parser(kind, help=_WHAT[kind], description=f"Submit a job to {_WHAT[kind]}.")
        k.add_argument("--config", required=True, help="YAML config (checked here before sending)")
        k.add_argument(
            "--address",
            help="the job server, http://HEAD:8265 (default: submit.address in the config, "
            "else $RAY_API_SERVER_ADDRESS or $RAY_ADDRESS)",
        )
        k.add_argument(
            "--wait", action="store_true", help="stream the logs and exit with the job's status"
        )
        k.add_argument("--submission-id", help="the job's id (default: localroute-KIND-TIME-HEX)")
        k.add_argument(
            "--job-args",
            metavar="'ARGS'",
            help="extra arguments for the job's command, one quoted string: --job-args='--x 1'",
        )
        k.set_defaults(func=_submit)
