"""`train_grpo(config)`: TRL's GRPOTrainer on enhancer rows, rewarded by what the frozen generator draws.

Per step: TRL samples `num_generations` answers per row's chat (the chat `PromptEnhancer.rewrite` sends),
each reward function scores them (grpo_rewards.py: text rules, and the rendered image's OCR, colours,
judge, aesthetics; rollout.py draws one batch per step), TRL weighs and normalises them per group and takes
a clipped policy-gradient step. Every `save_every` steps a Trainer checkpoint (model, optimiser, schedule,
RNG, data position) is written; rerunning the same command after a crash resumes from the last complete
one. At the end `model/` (a causal-LM folder that enhancer/loading.load_enhancer reads), metrics.jsonl,
one rollout contact sheet per logging step, and the report (report.md, rewards.png).
"""

import json
import time
from pathlib import Path

from qwen_image2.enhancer.grpo_config import IMAGE_REWARDS, GRPOConfig, check_inputs
from qwen_image2.enhancer.rows import EnhancerRow, read_rows, row_messages
from qwen_image2.enhancer.trainer_run import last_checkpoint, run_args
from qwen_image2.errors import UserError

ROW_COLUMNS = ("row_id", "user_prompt", "lang", "texts", "requested")


def rows_dataset(rows: list[EnhancerRow]):
    """A datasets.Dataset of the T2I rows: `prompt` (the chat) and ROW_COLUMNS for the rewards."""
    from datasets import Dataset

    t2i = [row for row in rows if row.task == "t2i"]
    if not t2i:
        raise UserError("no t2i rows: GRPO renders text-to-image requests (edit rows are skipped)")
    return Dataset.from_list(
        [
            {
                "prompt": row_messages(row),
                "row_id": row.id,
                "user_prompt": row.prompt,
                "lang": row.lang,
                "texts": list(row.texts),
                "requested": json.dumps(row.requested, ensure_ascii=False),
            }
            for row in t2i
        ]
    )


def trl_args(config: GRPOConfig, weights: list[float]):
    """TRL's GRPOConfig for the recipe (CPU-safe settings from reference §4.4 in `run_args`)."""
    from trl import GRPOConfig as TRLConfig

    train = config.train
    return TRLConfig(
        **run_args(config),
        max_steps=train.max_steps,
        per_device_train_batch_size=train.prompts_per_step * train.num_generations,
        gradient_accumulation_steps=1,
        num_generations=train.num_generations,
        max_completion_length=train.max_completion_length,
        temperature=train.temperature,
        top_p=train.top_p,
        beta=train.beta,
        epsilon=train.epsilon,
        loss_type="dapo",
        scale_rewards="group",
        reward_weights=weights,
        learning_rate=train.learning_rate,
        lr_scheduler_type="constant",  # a few hundred steps at most: no decay to tune
        # Qwen3 templates think unless told not to; inference sends the same switch (backend.Sampling).
        chat_template_kwargs={"enable_thinking": False},
    )


def load_generator_rollout(config: GRPOConfig):
    """The frozen generator as a Rollout (RequestSampler over the pipeline), or None when no image reward
    has a weight."""
    weights = config.rewards.model_dump()
    if not any(weights[name] for name in IMAGE_REWARDS):
        return None
    from qwen_image2.enhancer.rollout import Rollout
    from qwen_image2.models.device import resolve_device, resolve_dtype
    from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline
    from qwen_image2.pipelines.requests import RequestSampler

    device = resolve_device(config.device)
    pipe = QwenImage2Pipeline.from_model(
        config.generator, dtype=resolve_dtype(config.dtype, device), device=device
    )
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.transformer, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
    return Rollout(RequestSampler(pipe, config.render.text_bucket), config.render)


def load_judge(config: GRPOConfig):
    if not config.rewards.judge or config.judge.kind == "none":
        return None
    import os

    from qwen_image2.enhancer.rewards.judge import EndpointJudge, load_local_judge

    if config.judge.kind == "endpoint":
        key = os.environ.get(config.judge.api_key_env) or "EMPTY"
        return EndpointJudge(config.judge.url, config.judge.model, key, config.judge.timeout_s)
    return load_local_judge(config.judge.path)


def load_aesthetic(config: GRPOConfig):
    if not config.rewards.aesthetic:
        return None
    from qwen_image2.enhancer.rewards.aesthetic import load_laion_aesthetic

    settings = config.aesthetic
    return load_laion_aesthetic(settings.head, settings.clip_weights, settings.clip_model)


def build_trainer(config: GRPOConfig, reward_funcs: list, weights: list[float], rollout=None):
    """The GRPOTrainer over the base model and the rows, with the run log attached."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    from qwen_image2.enhancer.grpo_log import RunLog

    model = AutoModelForCausalLM.from_pretrained(config.base, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(config.base)
    if not tokenizer.chat_template:
        raise UserError(f"base {config.base}: the tokenizer has no chat template")
    return GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=trl_args(config, weights),
        train_dataset=rows_dataset(read_rows(config.data)),
        processing_class=tokenizer,
        callbacks=[RunLog(config.output_dir, rollout)],
    )


def train_grpo(config: GRPOConfig) -> Path:
    """Train (or resume) and export; returns the `model/` folder."""
    import torch

    from qwen_image2.enhancer.grpo_report import write_report
    from qwen_image2.enhancer.grpo_rewards import build_rewards

    check_inputs(config)
    read_rows(config.data)  # a bad row fails before any model loads
    if config.train.torch_threads:
        torch.set_num_threads(config.train.torch_threads)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    (config.output_dir / "config.json").write_text(config.model_dump_json(indent=2))
    rollout = load_generator_rollout(config)
    reward_funcs, weights = build_rewards(config, rollout, load_judge(config), load_aesthetic(config))
    trainer = build_trainer(config, reward_funcs, weights, rollout)
    resume = last_checkpoint(config.output_dir / "checkpoints")
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    model_dir = config.output_dir / "model"
    trainer.save_model(str(model_dir))
    trainer.processing_class.save_pretrained(model_dir)
    write_report(config.output_dir, time.perf_counter() - start)
    return model_dir
