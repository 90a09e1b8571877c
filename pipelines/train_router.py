"""Ray Train: fine-tune a transformer router with DDP, checkpoints, resume and early stopping.

`fit_with_ray_train(router, train, val)` runs a TorchTrainer (gloo on CPUs, nccl on GPUs) fed by
Ray Data. Each epoch every worker reports the validation AUC (computed on the whole validation
set, so all ranks agree on early stopping) with a checkpoint of the model and optimiser; after a
worker failure Ray Train restarts the group and the loop resumes from the last checkpoint.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from localroute.routers.config import TrainConfig


def _loop(config: dict[str, Any]) -> None:
    """The per-worker training function."""
    import ray.train
    import ray.train.torch
    import torch

    from localroute.metrics import roc_auc
    from localroute.routers.base import make_router

    router = make_router(config["router"], seed=config["seed"], **config["params"])
    router.info = config["info"]
    module, tokenizer = router.build()
    tcfg = TrainConfig(**config["train"])
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tcfg.lr)
    start, best, stale = 0, -1.0, 0
    ckpt = ray.train.get_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / "state.pt", weights_only=False)
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        start, best, stale = state["epoch"] + 1, state["best"], state["stale"]
    model = ray.train.torch.prepare_model(module)
    rank = ray.train.get_context().get_world_rank()
    shard = ray.train.get_dataset_shard("train")
    val = config["val"]
    pos = float(config["pos_rate"])
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - pos) / max(pos, 1e-3)))

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
            inputs = router.encode(tokenizer, batch)
            logits = model(**inputs)
            loss = loss_fn(logits, torch.as_tensor(batch["label"], dtype=torch.float32))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        scores = []
        with torch.no_grad():
            for i in range(0, len(val["text"]), 64):
                part = {k: v[i : i + 64] for k, v in val.items()}
                scores.append(torch.sigmoid(model(**router.encode(tokenizer, part))).numpy())
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


def fit_with_ray_train(
    router,
    train: dict,
    val: dict | None,
    tcfg: TrainConfig | None = None,
    run_name: str | None = None,
    fail_once_marker: str | None = None,
) -> dict[str, float]:
    """Fit `router` (a TransformerRouter) on a Ray TorchTrainer; loads the best checkpoint."""
    import ray
    import ray.data
    import torch
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from localroute.config import RayConfig
    from localroute.ray_runtime import init_ray
    from localroute.routers.base import RouterError

    tcfg = tcfg or getattr(router, "train_config", None) or TrainConfig()
    init_ray(RayConfig())  # no-op when a job already connected to Ray
    labels = np.asarray(train["label"], np.int8)
    if labels.size == 0:
        raise RouterError(f"{router.name}: empty training split")
    if val is None or len(val["text"]) == 0 or len(set(np.asarray(val["label"]).tolist())) < 2:
        raise RouterError(f"{router.name}: needs a validation split with both labels")
    router.prepare()
    table = pa.table(
        {
            "text": pa.array([str(t) for t in train["text"]]),
            "prompt_words": pa.array(np.asarray(train["prompt_words"], np.int64)),
            "label": pa.array(labels),
        }
    )
    keep = ("text", "prompt_words", "label")
    n_val = len(val["text"])
    take = np.arange(n_val)
    if tcfg.max_val_examples and n_val > tcfg.max_val_examples:  # a seeded, fixed subset
        take = np.sort(
            np.random.default_rng(router.seed).permutation(n_val)[: tcfg.max_val_examples]
        )
    val_small = {k: np.asarray(val[k])[take] for k in keep}
    storage = tcfg.storage_path or str(Path(tempfile.gettempdir()) / "localroute-ray-train")
    trainer = TorchTrainer(
        _loop,
        train_loop_config={
            "router": router.name,
            "seed": router.seed,
            "params": router.params,
            "info": router.info,
            "train": tcfg.__dict__,
            "val": val_small,
            "pos_rate": float(labels.mean()),
            "fail_once_marker": fail_once_marker,
        },
        scaling_config=ScalingConfig(
            num_workers=tcfg.num_workers,
            use_gpu=tcfg.use_gpu,
            resources_per_worker={"CPU": tcfg.cpus_per_worker},
        ),
        torch_config=TorchConfig(backend="nccl" if tcfg.use_gpu else "gloo"),
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
        state = torch.load(Path(d) / "state.pt", weights_only=False)
    router.load_module_state(state["model"])
    last = result.metrics  # the final report: how far training got, and where it resumed
    router.info["train_run"] = {
        "path": result.path,
        "epochs_run": int(last["epoch"]) + 1,
        "resumed_from_epoch": int(last["resumed_from_epoch"]),
    }
    return {
        "val_auc": float(best_metrics["val_auc"]),
        "best_epoch": float(best_metrics["epoch"]),
        "epochs_run": float(last["epoch"] + 1),
    }
