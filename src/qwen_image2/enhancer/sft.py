"""`train_sft(config)`: TRL's SFTTrainer on the reverse-engineered enhancer rows.

Each row is a prompt-completion pair in chat form: the prompt is the chat `PromptEnhancer.rewrite` sends
(the task's system prompt, the request, an edit's OCR'd source text), the completion the inverse reasoning
chain in <think> tags and then the 2.1 contract's JSON answer. The loss is on the completion only; all
weights train, or a LoRA adapter (`lora.enabled`) that is merged into the export. Every
`save_every` steps a Trainer checkpoint (model, optimiser, schedule, RNG, data position) is written;
rerunning the same command after a crash resumes from the last complete one. At the end `model/` (a
causal-LM folder that enhancer/loading.load_enhancer reads, and GRPO's `base`), metrics.jsonl (training
loss, token accuracy, eval loss) and the report (report.md, loss.png, what the model answers on held-out
rows).
"""

import time
from pathlib import Path

from qwen_image2.enhancer.rows import EnhancerRow, read_rows, row_completion, row_messages
from qwen_image2.enhancer.sft_config import TINY, SFTConfig, check_inputs
from qwen_image2.enhancer.trainer_run import MetricsLog, last_checkpoint, run_args


def rows_dataset(rows: list[EnhancerRow], reasoning: bool):
    """A datasets.Dataset in TRL's conversational prompt-completion form."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": row_messages(row),
                "completion": [{"role": "assistant", "content": row_completion(row, reasoning)}],
            }
            for row in rows
        ]
    )


def base_folder(config: SFTConfig) -> Path:
    """The folder SFT starts from; `base: tiny` is written once into the run (a resumed run reads it)."""
    if config.base != TINY:
        return Path(config.base)
    from qwen_image2.enhancer.tiny import save_tiny_enhancer

    folder = config.output_dir / "base"
    if not (folder / "model.safetensors").is_file():
        save_tiny_enhancer(folder, seed=config.base_seed)
    return folder


def trl_args(config: SFTConfig, evaluate: bool):
    """TRL's SFTConfig for the recipe: loss on the completion only, no packing (rows stay whole), fp32."""
    from trl import SFTConfig as TRLConfig

    train = config.train
    return TRLConfig(
        **run_args(config),
        max_steps=train.max_steps,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.gradient_accumulation,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler,
        warmup_steps=train.warmup_steps,
        weight_decay=train.weight_decay,
        max_length=train.max_length,
        completion_only_loss=True,
        packing=False,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=train.eval_every,
    )


def peft_config(config: SFTConfig):
    """The LoRA adapter TRL adds to the base when `lora.enabled`, else None (every weight trains)."""
    if not config.lora.enabled:
        return None
    from peft import LoraConfig

    lora = config.lora
    return LoraConfig(r=lora.rank, lora_alpha=lora.alpha, target_modules=lora.targets, task_type="CAUSAL_LM")


def load_rows(config: SFTConfig) -> tuple[list[EnhancerRow], list[EnhancerRow]]:
    """The training rows and the held-out rows (the first `train.eval_rows`; none without a held-out file);
    a bad row is a UserError before any model loads."""
    held = config.eval_path()
    return read_rows(config.data), read_rows(held)[: config.train.eval_rows] if held else []


def build_trainer(config: SFTConfig, rows: list[EnhancerRow], held: list[EnhancerRow]):
    """The SFTTrainer over the base model, the rows and the held-out rows, with the run log attached."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from qwen_image2.errors import UserError

    base = base_folder(config)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if not tokenizer.chat_template:
        raise UserError(f"base {base}: the tokenizer has no chat template")
    return SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(base, dtype="float32"),
        args=trl_args(config, evaluate=bool(held)),
        train_dataset=rows_dataset(rows, config.reasoning),
        eval_dataset=rows_dataset(held, config.reasoning) if held else None,
        processing_class=tokenizer,
        peft_config=peft_config(config),
        callbacks=[MetricsLog(config.output_dir)],
    )


def train_sft(config: SFTConfig) -> Path:
    """Train (or resume) and export; returns the `model/` folder."""
    import torch

    from qwen_image2.enhancer.sft_report import write_report

    check_inputs(config)
    rows, held = load_rows(config)
    if config.train.torch_threads:
        torch.set_num_threads(config.train.torch_threads)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    (config.output_dir / "config.json").write_text(config.model_dump_json(indent=2))
    trainer = build_trainer(config, rows, held)
    resume = last_checkpoint(config.output_dir / "checkpoints")
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    model_dir = config.output_dir / "model"
    model = trainer.model
    if config.lora.enabled:  # a plain causal-LM folder either way: what load_enhancer and GRPO read
        model = model.merge_and_unload()
    model.save_pretrained(model_dir)
    trainer.processing_class.save_pretrained(model_dir)
    write_report(config.output_dir, model_dir, held, time.perf_counter() - start)
    return model_dir
