"""SFT for the enhancer: the rows are the chat served at inference with the loss on the answer only, a
short run memorises a few rows so that the exported model rewrites them through `PromptEnhancer`, a run
killed with -9 resumes to the uninterrupted run's weights (bad input: tests/cli/test_bad_input.py)."""

import json
from pathlib import Path

import pytest
import torch
from resume_helpers import assert_resume_after_kill_equals_whole_run
from safetensors.torch import load_file

from qwen_image2.enhancer.loading import load_enhancer
from qwen_image2.enhancer.messages import build_messages
from qwen_image2.enhancer.rows import EnhancerRow, row_completion, write_rows
from qwen_image2.enhancer.sft import build_trainer, load_rows, train_sft
from qwen_image2.enhancer.sft_config import SFTConfig

WORDS = [
    ("CAT", "red", "white"),
    ("DOG", "blue", "yellow"),
    ("SUN", "black", "pink"),
    ("MAP", "navy", "grey"),
]


def poster_row(i: int, word: str, colour: str, background: str) -> EnhancerRow:
    return EnhancerRow(
        f"r{i}",
        "t2i",
        "en",
        f'poster saying "{word}"',
        f'A poster that reads "{word}" in {colour} bold monospaced letters on a flat {background} background.',
        reasoning=f'Given: "{word}". Missing: text colour, background. Infer: {colour} on {background}.',
        texts=[word],
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sft-rows")
    rows = [poster_row(i, *entry) for i, entry in enumerate(WORDS)]
    write_rows(rows, folder / "eval.jsonl")  # held out = the same rows: the check measures memorisation
    return write_rows(rows, folder / "rows.jsonl")


def test_a_row_is_the_served_chat_and_only_its_answer_is_learned(data, tmp_path):
    config = SFTConfig(data=data, output_dir=tmp_path, train={"max_steps": 1})
    trainer = build_trainer(config, *load_rows(config))
    tokenizer = trainer.processing_class
    example = trainer.train_dataset[0]
    ids, labels = example["input_ids"], example["labels"]
    row = poster_row(0, *WORDS[0])
    served = build_messages(row.prompt, [], "t2i", vision=False)
    prompt = tokenizer.apply_chat_template(served, add_generation_prompt=True, tokenize=False)
    cut = next(i for i, label in enumerate(labels) if label != -100)
    assert tokenizer.decode(ids[:cut]) == prompt and labels[cut:] == ids[cut:]
    answer = row_completion(row, reasoning=True)
    assert answer.startswith("<think>\nGiven:") and '"rewritten_prompt"' in answer
    assert tokenizer.decode(ids[cut:]) == answer + "<|im_end|>\n"


def test_a_short_run_memorises_rows_and_the_model_rewrites_them(data, tmp_path):
    torch.manual_seed(0)
    config = SFTConfig(
        data=data,
        output_dir=tmp_path,
        log_every=5,
        train={
            "max_steps": 80,
            "batch_size": 4,
            "learning_rate": 5e-3,
            "warmup_steps": 5,
            "eval_every": 40,
            "save_every": 1000,
        },
    )
    model_dir = train_sft(config)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in metrics if "loss" in row]
    evals = [row["eval_loss"] for row in metrics if "eval_loss" in row]
    assert len(losses) == 16 and losses[-1] < losses[0] / 10, losses
    assert len(evals) == 2 and evals[1] < evals[0], evals
    enhancer = load_enhancer(str(model_dir))
    for i, entry in enumerate(WORDS):
        row = poster_row(i, *entry)
        rewrite = enhancer.rewrite(row.prompt)
        assert rewrite.parse_ok and rewrite.rewritten_prompt == row.rewrite, rewrite.raw
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["held_out_check"]["parse_ok"] == 1.0 and report["held_out_check"]["exact"] == 1.0
    assert (tmp_path / "loss.png").is_file() and "Held-out loss" in (tmp_path / "report.md").read_text()


def test_lora_trains_only_the_adapter_and_exports_it_merged(data, tmp_path):
    rows = write_rows(
        [poster_row(i, *entry) for i, entry in enumerate(WORDS)], tmp_path / "rows" / "rows.jsonl"
    )
    config = SFTConfig(
        data=rows,  # no eval.jsonl beside it: no held-out check of an untrained model
        output_dir=tmp_path,
        lora={"enabled": True, "rank": 4, "alpha": 8},
        train={"max_steps": 4, "batch_size": 2, "learning_rate": 1e-2, "warmup_steps": 0, "save_every": 100},
    )
    model_dir = train_sft(config)
    base, merged = (load_file(folder / "model.safetensors") for folder in (tmp_path / "base", model_dir))
    assert merged.keys() == base.keys()  # no adapter tensors left: a plain causal-LM folder
    changed = {key for key in base if not torch.equal(base[key], merged[key])}
    assert changed and all(key.endswith("proj.weight") for key in changed), changed
    assert not any("norm" in key or "embed" in key for key in changed)
    loaded = load_enhancer(str(model_dir)).backend.model.state_dict()  # what a user of model/ gets
    assert all(torch.equal(loaded[key], merged[key]) for key in merged)


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_weights(data, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"data: {data}\nlog_every: 1\n"
        "train: {max_steps: 12, batch_size: 2, learning_rate: 1.0e-3, warmup_steps: 2, save_every: 3, "
        "eval_every: 4, keep_checkpoints: 2}\n"
    )
    broken = assert_resume_after_kill_equals_whole_run("sft", recipe, tmp_path)
    metrics = [json.loads(line) for line in (broken / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in metrics if "loss" in row] == list(range(1, 13))
    assert [row["step"] for row in metrics if "eval_loss" in row] == [4, 8, 12]
