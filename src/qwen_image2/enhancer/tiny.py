"""A tiny random enhancer: a Qwen3 causal LM of a few layers with the project's offline tokenizer.

Random weights answer garbage, which is what the fallback tests need; the same folder layout (config,
weights, tokenizer with a chat template, generation config) is what SFT starts from and what
`load_enhancer` reads from a real Qwen3 checkpoint.
"""

from pathlib import Path

import torch
from transformers import GenerationConfig, PreTrainedTokenizerBase, Qwen3Config, Qwen3ForCausalLM

from qwen_image2.data.synthetic.layouts import WORDS
from qwen_image2.enhancer.messages import SYSTEM_PROMPTS
from qwen_image2.enhancer.phrasings import TRAIN
from qwen_image2.models.tokenizer import CORPUS, build_tiny_tokenizer

# Four layers: copying a word letter by letter from the request into the answer takes an induction
# head (two layers at least); two more give it room for the colours. About 2 ms a token on 2 cores.
TINY_ENHANCER = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}
VOCAB_SIZE = 2048
THINK_TOKENS = ["<think>", "</think>"]


def enhancer_corpus() -> list[str]:
    """The tokenizer's corpus: the generator's, plus what the enhancer reads and writes most (system
    prompts, the demo's caption and instruction forms, the JSON answer, the reasoning chain, the
    training phrasings), so that each of their words is one token and an answer is short. Quoted
    capitals stay one token per letter (build_tiny_tokenizer's rule), whatever the corpus."""
    lines = list(CORPUS) + list(SYSTEM_PROMPTS.values()) * 8
    for colour in WORDS.text_colours:
        for background in WORDS.background_colours:
            lines += [
                f'{{"rewritten_prompt": "A poster that reads \\"X\\" in {colour} bold monospaced letters, '
                f'left-aligned on a flat {background} background.", "aspect_ratio": "1:1"}}',
                f"<think>\nGiven: {colour} text, {background} background. Missing: text colour, background, "
                f"font, layout. Infer: {colour} on {background}, house style.\n</think>",
            ] * 4
        lines += [
            f'Make the text read "X" instead of "Y". Make the text "X" {colour}. Move the text "X" to the top.',
            f'Given: new text "X", old text "Y". Missing: old text; <image1> reads "Y". Infer: replace it, '
            f'same place and style. Recolour, keep the rest. Remove the text. Text read from <image1>: "X" {colour}',
        ] * 4
    lines += [template for family in TRAIN for template in family.templates] * 4
    return lines


def build_tiny_enhancer(seed: int = 0) -> tuple[Qwen3ForCausalLM, PreTrainedTokenizerBase]:
    """The model (random weights from `seed`, float32) and its tokenizer."""
    tokenizer = build_tiny_tokenizer(VOCAB_SIZE, enhancer_corpus())
    tokenizer.add_tokens(THINK_TOKENS)  # Qwen3's own added tokens: one id each, as in its tokenizer
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
