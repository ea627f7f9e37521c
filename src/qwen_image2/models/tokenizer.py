"""An offline stand-in for the Qwen3-VL tokenizer: a small byte-level BPE with Qwen's special tokens.

Qwen's real tokenizer (151,936 ids) lives on the model hub. The tiny preset needs a tokenizer that
`Qwen3VLProcessor` accepts and that tokenizes chat templates the same way (special tokens are atomic,
text is byte-level BPE, any Unicode survives), so we train one in well under a second from a fixed corpus.
"""

import json
import tempfile

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import Qwen2Tokenizer

# The special tokens of Qwen2.5/3-VL's tokenizer, in their published order.
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Enough text for the merges a toy model benefits from: template words, typical prompt and edit words,
# and a few common Chinese characters (anything else falls back to bytes).
CORPUS = [
    "system user assistant Comprehend and analyze the provided prompt.",
    "<image1> <image2> <image3> Picture 1: Picture 2:",
    "a poster with the word HELLO in large red letters on a white background",
    "a slide titled Results with three bullet points in black text on a blue gradient",
    "a street sign that says OPEN, photographed at night, neon light, bokeh",
    "a label on a bottle reading ORGANIC HONEY, warm colours, studio lighting",
    "change the word to WORLD; make the background green; remove the logo; move the text left",
    "replace the text with the following words; add a red circle; keep everything else the same",
    "a photo of a cat sitting on a wooden table next to a cup of coffee in the morning sun",
    "the quick brown fox jumps over the lazy dog 0123456789",
    "一张海报，上面写着“你好世界”，红色大字，白色背景。把文字改成“欢迎”。",
]

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' or 'image' in item -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def _capitals(token: str) -> bool:
    """Two or more uppercase ASCII letters, after byte-level BPE's space marker."""
    letters = token.lstrip("Ġ")
    return len(letters) >= 2 and letters.isascii() and letters.isalpha() and letters.isupper()


def build_tiny_tokenizer(vocab_size: int = 1024, corpus: list[str] | None = None) -> Qwen2Tokenizer:
    """Train a byte-level BPE of `vocab_size` ids (special tokens included) on `corpus` (default: the
    generator's own) and wrap it as Qwen2Tokenizer.

    Deterministic: the same corpus and size give the same ids.
    """
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS if corpus is None else corpus, trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    # Capitals never merge: each letter of a quoted uppercase word is its own token, in the same place
    # in the prompt as on the poster, which a toy model learns to spell from far sooner.
    merges = [(a, b) for a, b in merges if not _capitals(a + b)]
    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS[1:]})
    tokenizer.chat_template = CHAT_TEMPLATE
    # A round trip through disk gives the exact object `from_pretrained` will later return.
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        return Qwen2Tokenizer.from_pretrained(folder)
