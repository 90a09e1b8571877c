"""`localroute train` and `localroute evaluate-routers`."""

from __future__ import annotations

import argparse
from pathlib import Path


def data_dir_for(cfg) -> Path:
    """The config's data build; built first when it is not there yet."""
    from localroute.data.build import build

    data_dir = Path(cfg.data.out).resolve()
    if not (data_dir / "outcomes").is_dir():
        print(f"== no data build at {data_dir}: building it")
        build(data_dir, cfg.data.source_dir, cfg.data.sources)
    return data_dir


def _train(args: argparse.Namespace) -> int:
    from cli.config import load_config
    from localroute.ray_runtime import ray_session
    from localroute.routers import get_router_class
    from pipelines.routers import train_one

    cfg = load_config(args.config)
    get_router_class(args.router)  # fail before any work on an unknown name
    out = Path(args.out or f"runs/routers/{args.router}-{args.data}").resolve()
    data_dir = data_dir_for(cfg)
    with ray_session(cfg.ray):
        print(f"== training router {args.router} on {args.data}")
        promote = Path(args.promote_into).resolve() if args.promote_into else None
        train_one(cfg, args.router, args.data, args.pair, data_dir, out, promote)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cli.config import load_config
    from localroute.errors import ConfigError
    from localroute.ray_runtime import ray_session
    from localroute.routers import get_router_class
    from pipelines.routers import evaluate_routers

    cfg = load_config(args.config)
    names = [n.strip() for n in args.routers.split(",") if n.strip()]
    for name in names:
        get_router_class(name)
    try:
        sizes = [int(s) for s in args.train_sizes.split(",")] if args.train_sizes else None
    except ValueError:
        raise ConfigError(f"--train-sizes must be integers, got {args.train_sizes!r}") from None
    data_dir = data_dir_for(cfg)
    out = Path(args.out).resolve()
    with ray_session(cfg.ray):
        print(f"== evaluating routers {', '.join(names)} on {args.data}")
        result = evaluate_routers(
            cfg, args.data, args.pair, names, data_dir, out, sizes, args.holdout_source
        )
    for line in result["versus_task_prior"].values():
        print(f"   {line}")
    print(
        f"outputs: {out / 'metrics.json'}, {out / 'quality_vs_cloud_share.png'}, "
        f"{out / 'summary.md'}"
    )
    return 0


def register(sub) -> None:
    t = sub.add_parser(
        "train",
        help="train one router (Ray Train for bert/decoder) and write its artifact",
        description="Fit a router on a source's train split for a (local, cloud) pair, calibrate "
        "its threshold on the val split, and write a self-describing artifact directory.",
    )
    t.add_argument("--config", default="configs/local.yaml", help="YAML config")
    t.add_argument("--router", required=True, help="router name (see evaluate-routers --help)")
    t.add_argument(
        "--pair",
        required=True,
        help="LOCAL,CLOUD model names as in the outcomes; with several sources, 'auto' (or a "
        "pair) gives each source its default pair where it lacks these models",
    )
    t.add_argument(
        "--data",
        required=True,
        help="source name (e.g. routellm_gsm8k, llmrouter), a comma-separated list, or all",
    )
    t.add_argument("--out", help="artifact directory (default runs/routers/<router>-<data>)")
    t.add_argument(
        "--promote-into",
        help="a served artifact directory (serve.router.artifact with watch_s): the new router "
        "is written there only if it beats the one there on the held-out labels",
    )
    t.set_defaults(func=_train)

    e = sub.add_parser(
        "evaluate-routers",
        help="compare routers on one source and pair (metrics.json + a PNG)",
        description="Fit each router (plus random, oracle and task-prior) and report AUC, F1, "
        "APGR, CPT(50%%), CPT(80%%) and AIQ on the test split. Routers: random, always-local, "
        "always-cloud, oracle, task-prior, knn, mlp, mf, gbt, stack, bert, decoder.",
    )
    e.add_argument("--config", default="configs/local.yaml", help="YAML config")
    e.add_argument("--data", required=True, help="source name, a comma-separated list, or all")
    e.add_argument("--pair", required=True, help="LOCAL,CLOUD model names, or auto")
    e.add_argument("--routers", required=True, help="comma-separated router names")
    e.add_argument("--out", required=True, help="output directory")
    e.add_argument("--train-sizes", help="comma-separated training-set sizes for a learning curve")
    e.add_argument(
        "--holdout-source",
        help="leave one source out: train on the --data sources (e.g. all) but this one, test on "
        "its test split (its own pair; training prompts found in it are dropped)",
    )
    e.set_defaults(func=_evaluate)
