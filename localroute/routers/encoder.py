"""Fine-tuned transformer routers, trained with Ray Train (pipelines/train_router.py).

- `bert`: seed 001 eq. 10: p = sigmoid(W [h_CLS ; L_p] + b) on a BERT encoder (MiniLM here).
- `decoder`: seed 000's binary decoder router: a causal LM with a one-logit classification
  head (AutoModelForSequenceClassification), optionally LoRA through peft.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from localroute.routers.base import Router, RouterError, register
from localroute.routers.examples import Batch


class TransformerRouter(Router):
    """Shared by bert and decoder: the module is built inside each Ray Train worker."""

    def prepare(self) -> None:
        """Work to do once in the driver before training starts."""

    def build(self):
        """(module, tokenizer): module(**encode(...)) returns one logit per row."""
        raise NotImplementedError

    def encode(self, tokenizer, batch: Batch) -> dict:
        enc = tokenizer(
            [str(t) for t in batch["text"]],
            truncation=True,
            max_length=int(self.params.get("max_length", 256)),
            padding=True,
            return_tensors="pt",
        )
        return dict(enc)

    def fit(self, train: Batch, val: Batch | None = None) -> dict[str, float]:
        from pipelines.train_router import fit_with_ray_train

        return fit_with_ray_train(self, train, val)

    def load_module_state(self, state: dict) -> None:
        self.module, self.tokenizer = self.build()
        self.module.load_state_dict(state)
        self.module.eval()

    def score(self, batch: Batch) -> np.ndarray:
        import torch

        if getattr(self, "module", None) is None:
            raise RouterError(f"{self.name}: not fitted")
        out = []
        size = int(self.params.get("score_batch_size", 64))
        n = len(batch["text"])
        with torch.no_grad():
            for i in range(0, n, size):
                part = {
                    k: v[i : i + size] for k, v in batch.items() if k in ("text", "prompt_words")
                }
                logits = self.module(**self.encode(self.tokenizer, part))
                out.append(torch.sigmoid(logits.float()).numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def _save_state(self, path: Path) -> None:
        import torch

        torch.save(self.module.state_dict(), path / "model.pt")

    def _load_state(self, path: Path) -> None:
        import torch

        self.load_module_state(torch.load(path / "model.pt", weights_only=True, map_location="cpu"))


@register("bert")
class BertRouter(TransformerRouter):
    """MiniLM (a 6-layer BERT) fine-tuned; its [CLS] vector and log(1 + L_p) feed one logit."""

    def build(self):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from localroute.routers.embed import minilm_path

        path = self.params.get("model", minilm_path())
        tokenizer = AutoTokenizer.from_pretrained(path)
        torch.manual_seed(self.seed)
        encoder = AutoModel.from_pretrained(path, add_pooling_layer=False)  # [CLS] is used raw
        trainable = int(self.params.get("train_layers", 2))  # top layers fine-tuned; rest frozen
        layers = encoder.encoder.layer
        for p in encoder.embeddings.parameters():
            p.requires_grad = False
        for layer in layers[: max(0, len(layers) - trainable)]:
            for p in layer.parameters():
                p.requires_grad = False

        class BertHead(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = encoder
                self.head = torch.nn.Linear(encoder.config.hidden_size + 1, 1)

            def forward(self, input_ids, attention_mask, prompt_len, token_type_ids=None):
                h = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
                cls = h.last_hidden_state[:, 0]
                return self.head(torch.cat([cls, prompt_len[:, None]], 1)).squeeze(-1)

        return BertHead(), tokenizer

    def encode(self, tokenizer, batch: Batch) -> dict:
        import torch

        enc = super().encode(tokenizer, batch)
        words = batch.get("prompt_words")
        if words is None:
            words = [len(str(t).split()) for t in batch["text"]]
        # L_p of eq. 10, log-scaled so one feature does not swamp the 384-d [CLS] vector
        enc["prompt_len"] = torch.tensor([math.log1p(float(w)) for w in words])
        return enc


@register("decoder")
class DecoderRouter(TransformerRouter):
    """A decoder-only LM with a binary classification head (seed 000's binary decoder router).

    `model`: any HF causal LM directory or hub id (e.g. Qwen/Qwen2.5-0.5B on a cluster); "tiny"
    builds a random-weight Qwen2 locally, for machines that cannot download weights.
    """

    def build(self):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = self._model_path()
        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        torch.manual_seed(self.seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, pad_token_id=tokenizer.pad_token_id
        )
        lora = self.params.get("lora")
        if lora:
            from peft import LoraConfig, TaskType, get_peft_model

            model = get_peft_model(
                model,
                LoraConfig(
                    task_type=TaskType.SEQ_CLS,
                    r=int(lora.get("r", 8)),
                    lora_alpha=int(lora.get("alpha", 16)),
                    lora_dropout=float(lora.get("dropout", 0.05)),
                ),
            )

        class Logit(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, **_):
                return self.model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]

        return Logit(), tokenizer

    def prepare(self) -> None:
        """Resolve (and for "tiny", build) the model once in the driver, before workers start."""
        self.info["model_path"] = self._model_path()

    def _model_path(self) -> str:
        model = str(self.params.get("model", "tiny"))
        if model != "tiny":
            return model
        if Path(self.info.get("model_path", "/nonexistent")).is_dir():
            return self.info["model_path"]
        from localroute.models.tiny import build_tiny_decoder

        cache = Path(self.params.get("cache_dir", Path.home() / ".cache" / "localroute"))
        return str(build_tiny_decoder(cache / f"tiny-decoder-{self.seed}", seed=self.seed))
