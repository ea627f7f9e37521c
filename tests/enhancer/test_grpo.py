"""GRPO for the enhancer: the rollout draws a group through a tiny random generator with fixed seeds, the
image rewards share one render per step, a few steps raise a learnable reward, a run killed with -9
resumes to the uninterrupted run's weights, the output loads as an enhancer, and bad input is one clear
error."""

import json
from pathlib import Path

import pytest
import torch
from resume_helpers import assert_resume_after_kill_equals_whole_run

from qwen_image2.enhancer.grpo import build_trainer
from qwen_image2.enhancer.grpo_config import GRPOConfig, RenderSection
from qwen_image2.enhancer.grpo_log import RunLog
from qwen_image2.enhancer.grpo_rewards import build_rewards
from qwen_image2.enhancer.loading import load_enhancer
from qwen_image2.enhancer.rollout import Rollout
from qwen_image2.enhancer.rows import EnhancerRow, write_rows
from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline
from qwen_image2.pipelines.requests import RequestSampler

ROOT = Path(__file__).resolve().parents[2]
RENDER = RenderSection(size=64, steps=2, guidance=1.0, text_bucket=32)


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory) -> Path:
    rows = [
        EnhancerRow(
            f"r{i}",
            "t2i",
            "en",
            f'a poster that says "{word}" in {colour}',
            f'A poster that reads "{word}" in {colour} letters on white.',
            texts=[word],
            requested={"text_colour": colour, "background": "white"},
        )
        for i, (word, colour) in enumerate(
            [("CAT", "red"), ("DOG", "blue"), ("SUN", "black"), ("MAP", "navy")]
        )
    ]
    return write_rows(rows, tmp_path_factory.mktemp("rows") / "rows.jsonl")


@pytest.fixture
def rollout(tiny):
    pipe = QwenImage2Pipeline.from_components(tiny)
    pipe.set_progress_bar_config(disable=True)
    return Rollout(RequestSampler(pipe, RENDER.text_bucket), RENDER)


def pixels(image) -> bytes:
    return image.tobytes()


def test_a_group_renders_in_one_batch_and_the_same_rewrite_and_seed_give_the_same_image(rollout, tiny):
    rewrites = ['a poster "CAT"', 'a poster "CAT"', None, 'a much longer poster that says "CAT" in red']
    images = rollout.render(rewrites, ["r1"] * 4)
    assert images[2] is None and rollout.rendered == 2  # duplicates drawn once, nothing for no answer
    assert pixels(images[0]) == pixels(images[1]) != pixels(images[3])
    assert rollout.render(rewrites, ["r1"] * 4) is images  # every image reward of a step shares the render
    fresh = Rollout(RequestSampler(QwenImage2Pipeline.from_components(tiny), RENDER.text_bucket), RENDER)
    again = fresh.render(['a poster "CAT"', 'a poster "CAT"'], ["r1", "r2"])
    assert pixels(again[0]) == pixels(images[0])  # same rewrite, same row seed, another sampler: same image
    assert pixels(again[1]) != pixels(images[0])  # another row's seed: other noise


def test_image_rewards_score_the_rendered_answers_and_the_log_draws_a_sheet(rollout, rows_file, tmp_path):
    config = GRPOConfig(
        base=tmp_path, data=rows_file, generator="tiny", rewards={"json_valid": 1, "ocr": 1, "colour": 1}
    )
    funcs, weights = build_rewards(config, rollout)
    assert [f.__name__ for f in funcs] == [
        "json_valid",
        "quotes_kept",
        "length",
        "language",
        "no_invented_quotes",
        "ocr",
        "colour",
    ]
    completions = [
        [{"role": "assistant", "content": text}]
        for text in ('{"rewritten_prompt": "A poster that reads \\"CAT\\" in red letters."}', "not JSON")
    ]
    columns = {
        "row_id": ["r0", "r0"],
        "user_prompt": ['a poster that says "CAT"'] * 2,
        "lang": ["en", "en"],
        "texts": [["CAT"], ["CAT"]],
        "requested": [json.dumps({"text_colour": "red"})] * 2,
    }
    by_name = {f.__name__: f(prompts=[None, None], completions=completions, **columns) for f in funcs}
    assert by_name["json_valid"] == [1.0, 0.0] and rollout.rendered == 1
    assert 0.0 <= by_name["ocr"][0] <= 1.0 and by_name["ocr"][1] == 0.0  # random generator: no word, no crash
    assert 0.0 <= by_name["colour"][0] <= 1.0 and by_name["colour"][1] == 0.0
    sheet = RunLog(tmp_path, rollout).write_sheet(3)
    assert sheet.name == "step-0000003.png" and sheet.is_file()


def low_token_share(prompts, completions, completion_ids, **_):
    """A reward a tiny random LM can learn in a few steps: the share of its tokens in the vocabulary's
    lower half (every token carries signal, unlike JSON validity, which a random LM never reaches)."""
    return [sum(t < 331 for t in ids) / max(1, len(ids)) for ids in completion_ids]


def test_a_few_grpo_steps_raise_the_mean_reward(tiny_enhancer_dir, rows_file, tmp_path):
    torch.manual_seed(0)
    config = GRPOConfig(
        base=tiny_enhancer_dir,
        data=rows_file,
        generator="tiny",
        output_dir=tmp_path,
        train={
            "num_generations": 4,
            "prompts_per_step": 2,
            "max_completion_length": 12,
            "learning_rate": 3e-2,
            "max_steps": 8,
            "save_every": 100,
            "seed": 0,
        },
    )
    trainer = build_trainer(config, [low_token_share], [1.0])
    trainer.train()
    rewards = [json.loads(line)["reward"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rewards) == 8
    assert sum(rewards[-2:]) / 2 > sum(rewards[:2]) / 2 + 0.2, rewards


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_weights(
    tiny_enhancer_dir, rows_file, tmp_path
):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"base: {tiny_enhancer_dir}\ndata: {rows_file}\ngenerator: tiny\n"
        "train: {num_generations: 2, max_completion_length: 24, learning_rate: 1.0e-3, max_steps: 10, "
        "save_every: 2, keep_checkpoints: 2}\n"
        "rewards: {json_valid: 1, quotes_kept: 0, length: 1, language: 0, no_invented_quotes: 0, ocr: 0, colour: 0}\n"
    )
    broken = assert_resume_after_kill_equals_whole_run("grpo", recipe, tmp_path)
    steps = [json.loads(line)["step"] for line in (broken / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))  # the steps after the checkpoint were logged once, not twice
    assert (broken / "report.md").is_file() and (broken / "rewards.png").is_file()
    enhancer = load_enhancer(str(broken / "model"))  # the output is an enhancer
    assert enhancer.rewrite('a poster "CAT"').rewritten_prompt


@pytest.mark.parametrize(
    "override, message",
    [
        ("base={missing}", "not a causal-LM folder"),
        ("data={missing}", "no such file"),
        ("train.max_step=3", "unknown config key 'train.max_step'; did you mean train.max_steps?"),
        ("rewards.judge=1", "rewards.judge has a weight but no judge"),
        ("rewards.aesthetic=1", "rewards.aesthetic has a weight but no scorer"),
    ],
)
def test_bad_input_is_one_clear_error(cli, tiny_enhancer_dir, rows_file, tmp_path, override, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"base: {tiny_enhancer_dir}\ndata: {rows_file}\ngenerator: tiny\n")
    code, captured = cli(
        [
            "enhancer",
            "grpo",
            str(recipe),
            override.format(missing=tmp_path / "nope"),
            f"output_dir={tmp_path / 'out'}",
        ]
    )
    assert code == 2 and message in captured.err and captured.err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_the_report_says_how_many_groups_taught_nothing(tmp_path):
    from qwen_image2.enhancer.grpo_report import write_report

    rows = [
        {"step": 1, "reward": 2.0, "rewards/ocr/mean": 1.0, "frac_reward_zero_std": 1.0, "entropy": 0.1},
        {"step": 2, "reward": 1.0, "rewards/ocr/mean": 0.5, "frac_reward_zero_std": 0.0, "entropy": 0.3},
        {"step": 3, "reward": 3.0, "rewards/ocr/mean": 0.0, "frac_reward_zero_std": 0.5, "entropy": 0.2},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    text = write_report(tmp_path, 1.0).read_text()
    figures = json.loads((tmp_path / "report.json").read_text())
    assert figures["groups_without_spread"] == pytest.approx(0.5)
    assert figures["mean_entropy"] == pytest.approx(0.2)
    assert figures["rewards"]["ocr"] == {"first": 1.0, "last": 0.0, "mean": 0.5}
    assert figures["rewards"]["total"]["mean"] == pytest.approx(2.0)
    assert "| ocr | 1.000 | 0.000 | 0.500 |" in text and "no reward spread" in text
