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
import time
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

    def prepare(self, *batches: Batch) -> None:
        """Work to do once in the driver before training starts (given the train and val rows)."""

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
    """A decoder-only LM with a binary head on its last token (seed 000's binary decoder router).

    `model`: a registry name (`smollm2-135m`: SmolLM2-135M-Instruct, pretrained; `tiny`: a
    random-weight Qwen2 for sub-second tests), a HF causal LM directory or a hub id (on a
    cluster). `mode`:

    - `frozen`: the backbone never trains. The last token's final hidden state is computed once
      per text (in the driver, before Ray Train starts) and cached on disk, keyed by the model
      and a hash of the text; a small head (LayerNorm, dropout, one logit) trains on it through
      the same Ray Train loop: one forward pass over the data, then seconds per epoch.
    - `lora`: LoRA adapters through peft (`lora: {r: 8, alpha: 16, targets: [q_proj, k_proj,
      v_proj, o_proj]}`) and the classification head train; the rest is frozen.
    - `full`: every weight trains (the default without `lora`, as before).
    """

    name = "decoder"
    prompt_first = False  # history, then the prompt: a causal LM's last token sees it all
    MODES = ("frozen", "lora", "full")
    LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")

    @property
    def mode(self) -> str:
        mode = str(self.params.get("mode") or ("lora" if self.params.get("lora") else "full"))
        if mode not in self.MODES:
            raise RouterError(f"decoder.mode: unknown {mode!r}; known: {', '.join(self.MODES)}")
        return mode

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_backbone", None)  # never shipped to the Ray Train workers
        return state

    def build(self):
        if self.mode == "frozen":
            return self._build_head(), None
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = self._model_path()
        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        torch.manual_seed(self.seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, pad_token_id=tokenizer.pad_token_id, dtype=torch.float32
        )
        if self.mode == "lora":
            from peft import LoraConfig, TaskType, get_peft_model

            lora = self.params.get("lora")
            lora = lora if isinstance(lora, dict) else {}
            model = get_peft_model(
                model,
                LoraConfig(
                    task_type=TaskType.SEQ_CLS,
                    r=int(lora.get("r", 8)),
                    lora_alpha=int(lora.get("alpha", 16)),
                    lora_dropout=float(lora.get("dropout", 0.05)),
                    target_modules=list(lora.get("targets", self.LORA_TARGETS)),
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
        if self.mode == "frozen":
            import torch

            return {"features": torch.from_numpy(self.features(texts(batch), contexts(batch)))}
        enc = super().encode(tokenizer, batch)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def prepare(self, *batches: Batch) -> None:
        """Once in the driver, before workers start: resolve (or build) the model; in frozen mode
        compute every text's features into the disk cache, so workers only read them."""
        self.info["model_path"] = self._model_path()
        if self.mode != "frozen":
            return
        self.info["feature_cache"] = str(self._feature_dir())
        started = time.perf_counter()
        n = 0
        for batch in batches:
            if batch is not None and n_rows(batch):
                n += len(self.features(texts(batch), contexts(batch)))
        self._backbone = None  # free it: training needs only the cached features
        self.info["feature_seconds"] = round(time.perf_counter() - started, 2)

    def _model_path(self) -> str:
        # Resolved once in the driver (prepare): workers and loaded artifacts reuse it while it
        # exists (a worker may not see the driver's LOCALROUTE_CACHE).
        if Path(self.info.get("model_path", "/nonexistent")).is_dir():
            return self.info["model_path"]
        model = str(self.params.get("model", "tiny"))
        if model != "tiny":
            from localroute.models.registry import model_source

            return model_source(model)
        from localroute.models.tiny import build_tiny_decoder

        cache = Path(self.params.get("cache_dir", Path.home() / ".cache" / "localroute"))
        return str(build_tiny_decoder(cache / f"tiny-decoder-{self.seed}", seed=self.seed))

    # -- frozen backbone: cached last-token features and a small head

    def _hidden_size(self) -> int:
        import json

        config = json.loads((Path(self._model_path()) / "config.json").read_text())
        return int(config["hidden_size"])

    def _build_head(self):
        import torch

        torch.manual_seed(self.seed)
        d = self._hidden_size()

        class Head(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.norm = torch.nn.LayerNorm(d)
                self.drop = torch.nn.Dropout(0.1)
                self.out = torch.nn.Linear(d, 1)

            def forward(self, features):
                return self.out(self.drop(self.norm(features))).squeeze(-1)

        return Head()

    def _feature_dir(self) -> Path:
        """<cache>/features/<model>-<tiny seed>-L<max_length>: one .npy per text hash."""
        import re

        if self.params.get("feature_cache_dir"):
            root = Path(self.params["feature_cache_dir"])
        elif self.info.get("feature_cache"):
            return Path(self.info["feature_cache"])
        else:
            from localroute.models.registry import cache_root

            root = cache_root().parent / "features"
        model = str(self.params.get("model", "tiny"))
        if model == "tiny":
            model = f"tiny-seed{self.seed}"
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model)
        return root / f"{slug}-L{int(self.params.get('max_length', 256))}"

    @staticmethod
    def _key(text: str, context: str) -> str:
        import hashlib

        return hashlib.sha256(f"{context}\x00{text}".encode()).hexdigest()

    def features(self, prompts: list[str], ctxs: list[str]) -> np.ndarray:
        """(n, hidden) float32: the backbone's final hidden state at each text's last token,
        read from the disk cache, computing (and caching) the missing ones."""
        import os
        import uuid

        root = self._feature_dir()
        keys = [self._key(t, c) for t, c in zip(prompts, ctxs, strict=True)]
        found: dict[str, np.ndarray] = {}
        todo: dict[str, tuple[str, str]] = {}
        for k, t, c in zip(keys, prompts, ctxs, strict=True):
            if k in found or k in todo:
                continue
            path = root / k[:2] / f"{k}.npy"
            try:
                found[k] = np.load(path)
            except (OSError, ValueError):
                todo[k] = (t, c)
        if todo:
            order = sorted(todo, key=lambda k: len(todo[k][0]) + len(todo[k][1]))
            size = int(self.params.get("feature_batch_size", 8))
            for i in range(0, len(order), size):
                part = order[i : i + size]
                vecs = self._forward([todo[k][0] for k in part], [todo[k][1] for k in part])
                for k, v in zip(part, vecs, strict=True):
                    found[k] = v
                    path = root / k[:2] / f"{k}.npy"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f".{k}.{uuid.uuid4().hex[:8]}.npy")
                    np.save(tmp, v)
                    os.replace(tmp, path)  # atomic: a reader never sees half a vector
        d = next(iter(found.values())).shape[0] if found else self._hidden_size()
        return np.stack([found[k] for k in keys]) if keys else np.zeros((0, d), np.float32)

    def _forward(self, prompts: list[str], ctxs: list[str]) -> list[np.ndarray]:
        import torch

        if getattr(self, "_backbone", None) is None:
            from transformers import AutoModel, AutoTokenizer

            path = self._model_path()
            tokenizer = AutoTokenizer.from_pretrained(path)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            tokenizer.padding_side = "left"  # the last position is every row's last token
            backbone = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
            self._backbone = (backbone, tokenizer)
        backbone, tokenizer = self._backbone
        max_length = int(self.params.get("max_length", 256))
        rows = [
            self.encode_row(tokenizer, p, c, max_length) for p, c in zip(prompts, ctxs, strict=True)
        ]
        enc = tokenizer.pad(
            [{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]} for r in rows],
            return_tensors="pt",
        )
        mask = enc["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            h = backbone(
                input_ids=enc["input_ids"], attention_mask=mask, position_ids=positions
            ).last_hidden_state[:, -1]
        return list(h.float().numpy().astype(np.float32))
