"""The local backend: a causal LM folder (any Qwen3-family checkpoint) run with transformers.

A hard bound on every call: `max_new_tokens` caps the length and `generate(max_time=...)` (transformers'
MaxTimeCriteria, checked after each token) caps the wall clock, so a model that never emits an end token
returns within the timeout plus one decoding step.
"""

from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from qwen_image2.enhancer.backend import Completion, Sampling
from qwen_image2.errors import UserError

# Qwen chat turns end with <|im_end|>; Qwen3 checkpoints list it (and <|endoftext|>) as EOS in their
# generation_config.json, but a bare tokenizer knows only <|endoftext|>.
END_TOKENS = ("<|im_end|>", "<|endoftext|>")


def load_causal_lm(
    folder: Path, device: str, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer from `folder`; a UserError when it is not a causal LM with a chat template."""
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder}: not a causal LM folder (no config.json); give a Qwen3 checkpoint folder")
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (ValueError, OSError, KeyError) as error:
        # transformers says "Unrecognized configuration class ..." for a config with no causal-LM head.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{folder}: not a causal LM folder ({first_line})") from None
    if not tokenizer.chat_template:
        raise UserError(f"{folder}: the tokenizer has no chat template (tokenizer_config.json chat_template)")
    return model.to(device).eval(), tokenizer


class LocalBackend:
    """A causal LM answering the chat; text only (`vision` False: edit images arrive as OCR'd text)."""

    vision = False

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, timeout_s: float = 30.0):
        self.model, self.tokenizer, self.timeout_s = model, tokenizer, timeout_s
        ids = [
            tokenizer.convert_tokens_to_ids(token) for token in END_TOKENS if token in tokenizer.get_vocab()
        ]
        configured = model.generation_config.eos_token_id
        configured = (
            configured if isinstance(configured, list) else [configured] if configured is not None else []
        )
        self.end_ids = sorted(set(ids) | set(configured))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end_ids[0]

    def complete(self, messages: list[dict], sampling: Sampling) -> Completion:
        extra = {} if sampling.thinking is None else {"enable_thinking": sampling.thinking}
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **extra
        )
        inputs = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        # A fresh GenerationConfig: a checkpoint's own one (Qwen3: do_sample, temperature 0.6) must not
        # turn greedy decoding into sampling.
        config = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            max_time=self.timeout_s,
            repetition_penalty=sampling.repetition_penalty,
            eos_token_id=self.end_ids,
            pad_token_id=self.pad_id,
            do_sample=not sampling.greedy,
        )
        if not sampling.greedy:
            config.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or 0)
        with torch.inference_mode():
            output = self.model.generate(**inputs, generation_config=config)
        new = output[0, inputs["input_ids"].shape[1] :].tolist()
        # Neither an end token nor the length limit: only the clock stops generation in between.
        if new and new[-1] in self.end_ids:
            finish = "stop"
        else:
            finish = "length" if len(new) >= sampling.max_new_tokens else "time"
        return Completion(self.tokenizer.decode(new, skip_special_tokens=True), finish)
