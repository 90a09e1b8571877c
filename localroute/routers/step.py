"""One training step of a torch router, shared by the Ray Train loop (training._loop) and
benchmarks/gpu_check.py, which times it on a GPU without Ray; torch is imported only when called."""

from __future__ import annotations

import numpy as np


def make_optimiser(module, lr: float):
    """AdamW over the parameters that train (a frozen backbone's or LoRA's base weights do not)."""
    import torch

    return torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=lr)


def weighted_loss(pos_rate: float, device):
    """Binary cross-entropy weighting the positives (needs cloud) by the class ratio."""
    import torch

    weight = torch.tensor((1 - pos_rate) / max(pos_rate, 1e-3), device=device)
    return torch.nn.BCEWithLogitsLoss(pos_weight=weight)


def device_inputs(router, tokenizer, batch, device) -> dict:
    return {k: v.to(device) for k, v in router.encode(tokenizer, batch).items()}


def train_step(router, model, tokenizer, batch, opt, loss_fn, device) -> float:
    """One optimiser step on one batch (encode, forward, loss, backward, step); its loss. What
    each Ray Train worker runs per batch, and what benchmarks/gpu_check.py times without Ray."""
    import torch

    logits = model(**device_inputs(router, tokenizer, batch, device))
    # a copy: Ray Data hands read-only arrays, which torch.as_tensor would warn about
    target = torch.tensor(np.array(batch["label"]), dtype=torch.float32, device=device)
    loss = loss_fn(logits, target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()
