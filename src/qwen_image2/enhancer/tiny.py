"""A tiny random enhancer: a Qwen3 causal LM of a few layers with the project's offline tokenizer.

Random weights answer garbage, which is what the fallback tests need; the same folder layout (config,
weights, tokenizer with a chat template, generation config) is what SFT starts from and what
`load_enhancer` reads from a real Qwen3 checkpoint.
"""

from pathlib import Path

import torch
from transformers import GenerationConfig, PreTrainedTokenizerBase, Qwen3Config, Qwen3ForCausalLM

from qwen_image2.models.tokenizer import build_tiny_tokenizer

# Small enough to build in well under a second and decode a token in about a millisecond on one core.
TINY_ENHANCER = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}


def build_tiny_enhancer(seed: int = 0) -> tuple[Qwen3ForCausalLM, PreTrainedTokenizerBase]:
    """The model (random weights from `seed`, float32) and its tokenizer."""
    tokenizer = build_tiny_tokenizer()
    end_ids = [tokenizer.convert_tokens_to_ids(token) for token in ("<|im_end|>", "<|endoftext|>")]
    config = Qwen3Config(
        vocab_size=len(tokenizer), eos_token_id=end_ids, pad_token_id=tokenizer.pad_token_id, **TINY_ENHANCER
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=end_ids, pad_token_id=tokenizer.pad_token_id)
    return model, tokenizer


def save_tiny_enhancer(folder: Path, seed: int = 0) -> Path:
    """Write the tiny enhancer to `folder` as a transformers causal-LM folder; returns `folder`."""
    model, tokenizer = build_tiny_enhancer(seed)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
