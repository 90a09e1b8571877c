"""Fine-tuned transformer routers, trained with Ray Train (training.fit_with_ray_train).

- `bert`: seed 001 eq. 10: p = sigmoid(W [h_CLS ; L_p] + b) on a BERT encoder (MiniLM here),
  reading the prompt and then the history as a sentence pair ([CLS] prompt [SEP] context [SEP]).
- `decoder`: seed 000's binary decoder router: a causal LM with a one-logit classification
  head (AutoModelForSequenceClassification), optionally LoRA through peft; it reads the history
  and then the prompt, so the prompt is what its last token has just seen.

Within `max_length` tokens the prompt keeps its head and tail and gets at least half of the
window; the history fills the rest with its most recent tokens.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import numpy as np

from localroute.routers.errors import RouterError
from localroute.routers.features import (
    Batch,
    contexts,
    cut_by_offsets,
    head_tail,
    n_rows,
    prompt_words,
    texts,
)
from localroute.routers.protocol import Router

ELLIPSIS_TOKENS = 4  # what the " ... " joining a prompt's head and tail may take


def _offsets(tokenizer, text: str) -> list[tuple[int, int]] | None:
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["offset_mapping"])
    except (NotImplementedError, ValueError, TypeError, KeyError):  # a slow tokenizer
        return None


def _cut(tokenizer, text: str, budget: int, keep: str = "head_tail") -> tuple[str, int]:
    """(text cut to `budget` tokens, its token count before the cut)."""
    offsets = _offsets(tokenizer, text)
    if offsets is None:
        return head_tail(text, 4 * budget), 4 * budget
    return cut_by_offsets(text, offsets, budget, keep), len(offsets)


class TransformerRouter(Router):
    """Shared by bert and decoder: the module is built inside each Ray Train worker."""

    state_files = ("model.pt",)
    prompt_first: ClassVar[bool] = True  # the order of the (prompt, context) pair

    def prepare(self) -> None:
        """Work to do once in the driver before training starts."""

    def build(self):
        """(module, tokenizer): module(**encode(...)) returns one logit per row."""
        raise NotImplementedError

    def encode_row(self, tokenizer, prompt: str, context: str, max_length: int) -> dict:
        """One row's token ids: the prompt's head and tail, then the history's latest tokens."""
        special = tokenizer.num_special_tokens_to_add(pair=bool(context))
        budget = max(max_length - special - ELLIPSIS_TOKENS, 8)
        n_prompt = len(_offsets(tokenizer, prompt) or prompt.split())
        if context:
            n_context = len(_offsets(tokenizer, context) or context.split())
            # the prompt takes what it needs, and at least half the window when both are long
            prompt_budget = min(n_prompt, max(budget // 2, budget - n_context))
            context, _ = _cut(tokenizer, context, budget - prompt_budget, keep="tail")
        prompt, _ = _cut(tokenizer, prompt, budget if not context else prompt_budget)
        if not context:
            return dict(tokenizer(prompt, truncation=True, max_length=max_length))
        pair = (prompt, context) if self.prompt_first else (context, prompt)
        return dict(tokenizer(*pair, truncation="longest_first", max_length=max_length))

    def encode(self, tokenizer, batch: Batch) -> dict:
        max_length = int(self.params.get("max_length", 256))
        rows = [
            self.encode_row(tokenizer, p, c, max_length)
            for p, c in zip(texts(batch), contexts(batch), strict=True)
        ]
        return dict(tokenizer.pad(rows, return_tensors="pt"))

    def load_module_state(self, state: dict) -> None:
        self.module, self.tokenizer = self.build()
        self.module.load_state_dict(state)
        self.module.eval()

    def raw_score(self, batch: Batch) -> np.ndarray:
        import torch

        if getattr(self, "module", None) is None:
            raise RouterError(f"{self.name}: not fitted")
        out = []
        size = int(self.params.get("score_batch_size", 64))
        n = n_rows(batch)
        keep = ("text", "context", "prompt_words")
        with torch.no_grad():
            for i in range(0, n, size):
                part = {k: v[i : i + size] for k, v in batch.items() if k in keep}
                logits = self.module(**self.encode(self.tokenizer, part))
                out.append(torch.sigmoid(logits.float()).numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def _save_state(self, path: Path) -> None:
        import torch

        torch.save(self.module.state_dict(), path / "model.pt")

    def _load_state(self, path: Path) -> None:
        import torch

        self.load_module_state(torch.load(path / "model.pt", weights_only=True, map_location="cpu"))


class BertRouter(TransformerRouter):
    """MiniLM (a 6-layer BERT) fine-tuned; its [CLS] vector and log(1 + L_p) feed one logit."""

    name = "bert"

    def build(self):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from localroute.routers.embedders import minilm_path

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

            def forward(self, input_ids, attention_mask, token_type_ids, prompt_len):
                # token_type_ids: 0 on the prompt, 1 on the history (BERT's sentence pair)
                h = self.encoder(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                )
                cls = h.last_hidden_state[:, 0]
                return self.head(torch.cat([cls, prompt_len[:, None]], 1)).squeeze(-1)

        return BertHead(), tokenizer

    def encode(self, tokenizer, batch: Batch) -> dict:
        import torch

        enc = super().encode(tokenizer, batch)
        if "token_type_ids" not in enc:
            enc["token_type_ids"] = torch.zeros_like(enc["input_ids"])
        # L_p of eq. 10, log-scaled so one feature does not swamp the 384-d [CLS] vector
        enc["prompt_len"] = torch.tensor([math.log1p(w) for w in prompt_words(batch)])
        return enc


class DecoderRouter(TransformerRouter):
    """A decoder-only LM with a binary classification head (seed 000's binary decoder router).

    `model`: any HF causal LM directory or hub id (e.g. Qwen/Qwen2.5-0.5B on a cluster); "tiny"
    builds a random-weight Qwen2 locally, for machines that cannot download weights.
    """

    name = "decoder"
    prompt_first = False  # history, then the prompt: a causal LM's last token sees it all

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

            def forward(self, input_ids, attention_mask):
                return self.model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]

        return Logit(), tokenizer

    def encode(self, tokenizer, batch: Batch) -> dict:
        enc = super().encode(tokenizer, batch)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

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
