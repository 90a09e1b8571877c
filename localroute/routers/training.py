"""Fitting a router: the one training module (learning, probability calibration, threshold).

`fit(router, train, val, config, calibration)` is the entry point every job uses (and what
`Router.fit` calls):

1. learning: in process (`router.learn`, for knn/mlp/mf/task-prior), or on a Ray Train
   `TorchTrainer` for the fine-tuned routers (those with `build`, see `fit_with_ray_train`);
2. probability calibration: a Platt (or isotonic) calibrator fitted on the validation split's
   raw scores (a seeded fifth of the training split when there is no usable validation split),
   stored on the router and in its artifact, applied inside `Router.score`;
3. the threshold, when `calibration` (a target cloud share or quality) is given.

The Ray Train loop (gloo on CPUs, nccl on GPUs) is fed by Ray Data. Each epoch every worker
reports the validation AUC (computed on the whole validation set, so all ranks agree on early
stopping) with a checkpoint of the model and optimiser; after a worker failure Ray Train restarts
the group and the loop resumes from the last checkpoint. Its `TrainConfig` is an argument, and its
workers are placed by `localroute.placement` (`TrainConfig.placement`, a pool's placement).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from localroute.errors import ConfigError
from localroute.placement import HARDWARE_LABEL, Placement, scaling_config_args_for, unschedulable
from localroute.routers.calibration import (
    IDENTITY,
    calibration_report,
    fit_calibrator,
    flag_degenerate,
)
from localroute.routers.errors import RouterError
from localroute.routers.features import Batch, contexts, n_rows, prompt_words, take, texts
from localroute.routers.threshold import choose_threshold

HOLDOUT_SHARE = 0.2  # of the training split, to calibrate on when no validation split is usable
MIN_CALIBRATION_ROWS = 10


@dataclass(frozen=True)
class TrainConfig:
    """How Ray Train fits the torch routers (`routers.train` in a config)."""

    num_workers: int = 2
    cpus_per_worker: float = 0.5  # fractions: on 2 cores the Ray Data read task must still run
    use_gpu: bool = False  # nccl on GPUs, gloo on CPUs
    epochs: int = 3
    patience: int = 2  # early stop after this many epochs without a better validation AUC
    batch_size: int = 32
    lr: float = 5e-5
    max_failures: int = 2  # worker failures Ray Train recovers from (resuming from a checkpoint)
    max_train_examples: int | None = None  # subsample for speed (the demo); None = all
    max_val_examples: int | None = 1000  # the per-epoch validation AUC every worker computes
    storage_path: str | None = None  # None: <tmp>/localroute-ray-train
    # Where each worker runs, as a pool's placement ({kind: nvidia-h100}, {kind: cpu, num_cpus:
    # 0.5}, ...); it then replaces cpus_per_worker/use_gpu. None: any node with those resources.
    placement: Placement | None = None

    def check(self, where: str) -> None:
        for name in ("num_workers", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(self, name)}")
        if self.cpus_per_worker <= 0 or self.lr <= 0:
            raise ConfigError(f"{where}: cpus_per_worker and lr must be > 0")
        if self.placement is not None:
            self.placement.check(f"{where}.placement")


# --------------------------------------------------------------------------- fit


def fit(
    router,
    train: Batch,
    val: Batch | None = None,
    config: TrainConfig | None = None,
    calibration=None,
) -> dict[str, float]:
    """Fit `router` on `train`, calibrate its p on `val`; returns the learning metrics.

    config: how Ray Train runs (fine-tuned routers only); calibration: an object with `target`
    ("cloud_share" | "quality") and `value` to set the threshold on `val`, or None.
    """
    config = config or TrainConfig()
    started = time.perf_counter()
    metrics: dict[str, float] = {}
    if router.trainable:
        labels = np.asarray(train["label"], np.float64)
        if labels.size == 0:
            raise RouterError(f"{router.name}: empty training split")
        held, on = val, "validation split"
        if not router.self_calibrated and not _usable(val):
            train, held = holdout(train, router.seed)
            on = f"a seeded {HOLDOUT_SHARE:.0%} of the training split (no usable validation split)"
        if hasattr(router, "build"):
            metrics = fit_with_ray_train(router, train, held, config)
        else:
            metrics = dict(router.learn(train, held) or {})
        router.info["base_rate"] = float(np.asarray(train["label"], np.float64).mean())
        if router.self_calibrated:
            router.calibrator = IDENTITY
            router.info["calibrator"] = {"method": "identity", "why": "scores are frequencies"}
        else:
            calibrate_probabilities(router, held, on)
    else:
        router.calibrator = IDENTITY
        router.info["calibrator"] = {"method": "identity", "why": "learns nothing"}
    router.info.update(
        data_fingerprint=data_fingerprint(train),
        n_train=int(n_rows(train)),
        fit_seconds=round(time.perf_counter() - started, 2),
    )
    if calibration is not None:
        split = val if _usable(val) else None
        if split is not None:
            choose_threshold(router, split, calibration.target, calibration.value)
    return metrics


def calibrate_probabilities(router, held: Batch | None, on: str) -> dict[str, Any]:
    """Fit the router's calibrator on held-out rows (params["calibration"]: platt | isotonic)."""
    method = str(router.params.get("calibration", "platt"))
    if not _usable(held):
        router.calibrator = IDENTITY
        router.info["calibrator"] = {
            "method": "identity",
            "why": "uncalibrated: too few held-out rows of both labels",
        }
        router.info["degenerate"] = "too few held-out rows of both labels to tell whether it "
        router.info["degenerate"] += "beats random; its p is uncalibrated"
        return router.info["calibrator"]
    labels = np.asarray(held["label"], np.float64)
    raw = router.uncalibrated(held)
    router.calibrator = fit_calibrator(raw, labels, method)
    report = calibration_report(raw, router.calibrator(raw), labels)
    router.info["calibrator"] = {**router.calibrator.to_dict(), "on": on, **report}
    flag_degenerate(router, raw, labels, on)
    return router.info["calibrator"]


def _usable(split: Batch | None) -> bool:
    if split is None or "label" not in split or n_rows(split) < MIN_CALIBRATION_ROWS:
        return False
    return len(np.unique(np.asarray(split["label"]))) >= 2


def holdout(batch: Batch, seed: int, share: float = HOLDOUT_SHARE) -> tuple[dict, dict]:
    """(rest, held out): a seeded `share` of the rows, stratified by label."""
    labels = np.asarray(batch["label"])
    rng = np.random.default_rng(seed + 7919)
    held = np.zeros(labels.size, bool)
    for value in np.unique(labels):
        idx = np.nonzero(labels == value)[0]
        held[rng.permutation(idx)[: int(round(share * idx.size))]] = True
    return take(batch, np.nonzero(~held)[0]), take(batch, np.nonzero(held)[0])


def data_fingerprint(batch: Batch) -> str:
    """A hash of the training examples (ids, turns and labels) an artifact was fitted on."""
    h = hashlib.sha256()
    for key in ("query_id", "turn", "label"):
        if key in batch:
            h.update(np.asarray(batch[key]).astype(str).tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- placement


def scaling_config_args(config: TrainConfig, nodes: list[dict] | None = None) -> dict[str, Any]:
    """`ray.train.ScalingConfig` keyword arguments (use_gpu, resources_per_worker,
    label_selector) for one Train worker, from `localroute.placement`.

    An explicit `config.placement` selects its hardware kind, and a placement no node can host is
    an error rather than a run that waits forever. Without one, workers take cpus_per_worker (and
    a GPU when use_gpu) on any node, as before placements existed. An unlabelled Ray instance (a
    bare `ray.init()`) says nothing about kinds, so none is required there.
    """
    placement = config.placement or Placement(
        num_cpus=config.cpus_per_worker, num_gpus=1.0 if config.use_gpu else None
    )
    args = scaling_config_args_for(placement)
    if nodes is None:
        import ray

        nodes = ray.nodes()
    alive = [n for n in nodes if n.get("Alive", n.get("alive", True))]
    labelled = any(HARDWARE_LABEL in (n.get("Labels") or {}) for n in alive)
    if config.placement is None or not labelled:
        args["label_selector"].pop(HARDWARE_LABEL, None)
    if config.placement is not None:
        kind = placement.resolved_kind
        seen = [{**n, "Labels": {HARDWARE_LABEL: kind, **(n.get("Labels") or {})}} for n in alive]
        problem = unschedulable({"routers.train.placement": placement}, seen)
        if problem:
            raise RouterError(f"routers.train.placement: {problem['routers.train.placement']}")
    args["label_selector"] = args["label_selector"] or None
    return args


# --------------------------------------------------------------------------- Ray Train


def _loop(config: dict[str, Any]) -> None:
    """The per-worker training function."""
    import ray.train
    import ray.train.torch
    import torch

    from localroute.metrics import roc_auc
    from localroute.routers.step import device_inputs, make_optimiser, train_step, weighted_loss

    router = config["router"]
    tcfg: TrainConfig = config["train"]
    module, tokenizer = router.build()
    opt = make_optimiser(module, tcfg.lr)
    start, best, stale = 0, -1.0, 0
    ckpt = ray.train.get_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / "state.pt", weights_only=False, map_location="cpu")
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        start, best, stale = state["epoch"] + 1, state["best"], state["stale"]
    model = ray.train.torch.prepare_model(module)
    device = ray.train.torch.get_device()  # a GPU under placement kinds with one, else the CPU
    rank = ray.train.get_context().get_world_rank()
    shard = ray.train.get_dataset_shard("train")
    val = config["val"]
    loss_fn = weighted_loss(float(config["pos_rate"]), device)

    for epoch in range(start, tcfg.epochs):
        marker = config.get("fail_once_marker")
        model.train()
        losses = []
        for step, batch in enumerate(
            shard.iter_batches(batch_size=tcfg.batch_size, batch_format="numpy")
        ):
            if marker and epoch == 1 and step == 0 and rank == 0 and not os.path.exists(marker):
                # Fault injection for the resume test: this worker process dies in epoch 1, once,
                # a while after epoch 0's checkpoint was reported (so the controller has it).
                Path(marker).write_text("killed")
                time.sleep(3)
                os._exit(1)
            losses.append(train_step(router, model, tokenizer, batch, opt, loss_fn, device))
        model.eval()
        scores = []
        with torch.no_grad():
            for i in range(0, len(val["text"]), 64):
                part = {k: v[i : i + 64] for k, v in val.items()}
                logits = model(**device_inputs(router, tokenizer, part, device))
                scores.append(torch.sigmoid(logits).float().cpu().numpy())
        auc = float(roc_auc(val["label"], np.concatenate(scores)))
        improved = auc > best + 1e-4
        best, stale = (auc, 0) if improved else (best, stale + 1)
        metrics = {
            "epoch": epoch,
            "val_auc": auc,
            "best_val_auc": best,
            "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "resumed_from_epoch": start,
        }
        with tempfile.TemporaryDirectory() as d:
            checkpoint = None
            if rank == 0:
                unwrapped = model.module if hasattr(model, "module") else model
                torch.save(
                    {
                        "model": unwrapped.state_dict(),
                        "optim": opt.state_dict(),
                        "epoch": epoch,
                        "best": best,
                        "stale": stale,
                    },
                    Path(d) / "state.pt",
                )
                checkpoint = ray.train.Checkpoint.from_directory(d)
            ray.train.report(metrics, checkpoint=checkpoint)
        if stale >= tcfg.patience:
            break


def _columns(batch: Batch, labels: np.ndarray) -> dict[str, np.ndarray]:
    """What the Train workers read: cleaned prompt and history, L_p and the label."""
    return {
        "text": np.array(texts(batch), dtype=object),
        "context": np.array(contexts(batch), dtype=object),
        "prompt_words": prompt_words(batch).astype(np.int64),
        "label": labels,
    }


def fit_with_ray_train(
    router,
    train: Batch,
    val: Batch | None,
    config: TrainConfig | None = None,
    run_name: str | None = None,
    fail_once_marker: str | None = None,
) -> dict[str, float]:
    """Fit `router` (one with build/encode/load_module_state) on a Ray TorchTrainer; loads the
    best checkpoint's weights into it. The probabilities are calibrated by `fit`, not here."""
    import pyarrow as pa
    import ray
    import ray.data
    import torch
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from localroute.config import RayConfig
    from localroute.ray_runtime import init_ray

    tcfg = config or TrainConfig()
    init_ray(RayConfig())  # no-op when a job already connected to Ray
    labels = np.asarray(train["label"], np.int8)
    if labels.size == 0:
        raise RouterError(f"{router.name}: empty training split")
    if val is None or n_rows(val) == 0 or len(set(np.asarray(val["label"]).tolist())) < 2:
        raise RouterError(f"{router.name}: needs a validation split with both labels")
    columns = _columns(train, labels)
    table = pa.table({k: pa.array(list(v) if v.dtype == object else v) for k, v in columns.items()})
    n_val = n_rows(val)
    take_idx = np.arange(n_val)
    if tcfg.max_val_examples and n_val > tcfg.max_val_examples:  # a seeded, fixed subset
        take_idx = np.sort(
            np.random.default_rng(router.seed).permutation(n_val)[: tcfg.max_val_examples]
        )
    val_small = _columns(take(val, take_idx), np.asarray(val["label"], np.int8)[take_idx])
    router.prepare(columns, val_small)  # e.g. a frozen backbone's features, once, in the driver
    storage = tcfg.storage_path or str(Path(tempfile.gettempdir()) / "localroute-ray-train")
    scaling = scaling_config_args(tcfg)
    trainer = TorchTrainer(
        _loop,
        train_loop_config={
            "router": router,
            "train": tcfg,
            "val": val_small,
            "pos_rate": float(labels.mean()),
            "fail_once_marker": fail_once_marker,
        },
        scaling_config=ScalingConfig(num_workers=tcfg.num_workers, **scaling),
        torch_config=TorchConfig(backend="nccl" if scaling["use_gpu"] else "gloo"),
        run_config=RunConfig(
            # a fresh name per run: Ray Train V2 resumes a run of the same name
            name=run_name or f"{router.name}-{uuid.uuid4().hex[:8]}",
            storage_path=str(Path(storage).resolve()),
            failure_config=FailureConfig(max_failures=tcfg.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=2, checkpoint_score_attribute="val_auc", checkpoint_score_order="max"
            ),
        ),
        datasets={"train": ray.data.from_arrow(table)},
    )
    result = trainer.fit()
    if result.error:
        raise RouterError(f"{router.name}: Ray Train failed: {result.error}")
    best_ckpt, best_metrics = max(result.best_checkpoints, key=lambda cm: cm[1]["val_auc"])
    with best_ckpt.as_directory() as d:
        state = torch.load(Path(d) / "state.pt", weights_only=False, map_location="cpu")
    router.load_module_state(state["model"])
    last = result.metrics  # the final report: how far training got, and where it resumed
    router.info["train_run"] = {
        "path": result.path,
        "epochs_run": int(last["epoch"]) + 1,
        "resumed_from_epoch": int(last["resumed_from_epoch"]),
        "scaling": {k: v for k, v in scaling.items() if v is not None},
    }
    return {
        "val_auc": float(best_metrics["val_auc"]),
        "best_epoch": float(best_metrics["epoch"]),
        "epochs_run": float(last["epoch"] + 1),
    }
