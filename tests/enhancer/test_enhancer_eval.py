"""`eval enhancer` and `eval text --enhancer`: prompts are rewritten first; the enhancer's own figures."""

import json
import shutil

import pytest

from qwen_image2.enhancer.evaluation import comparison_table, rewrite_fields, summarize_rewrites
from qwen_image2.enhancer.rewrite import Rewrite
from qwen_image2.evaluation.heldout import PROMPTS_DIR

DEMO = "checkpoints/tiny-demo"
FAST = ["--steps", "2", "--seed", "0", "--size", "128"]


def _rewrite(text: str, ok: bool, raw: str, latency: float = 0.1) -> Rewrite:
    return Rewrite(text, "1:1", (128, 128), ok, None if ok else "why", latency, raw)


def test_quotes_kept_counts_the_models_own_answer_and_quotes_drawn_the_prompt_after_the_fallback():
    prompt = 'a poster "HELLO"'
    dropped = _rewrite(prompt, False, '{"rewritten_prompt": "A poster that reads Hello."}')
    kept = _rewrite(
        'A poster that reads "HELLO".', True, '{"rewritten_prompt": "A poster that reads \\"HELLO\\"."}'
    )
    repaired = _rewrite("a cat, sharp", True, "{'rewritten_prompt': 'a cat, sharp'")
    rows = [rewrite_fields(prompt, dropped), rewrite_fields(prompt, kept), rewrite_fields("a cat", repaired)]
    assert [r["quotes_kept"] for r in rows] == [False, True, None]  # no quotes in "a cat": not counted
    assert [r["quotes_drawn"] for r in rows] == [True, True, None]  # the fallback draws the prompt as typed
    lost = rewrite_fields(prompt, _rewrite("A poster that reads Hello.", True, ""))
    assert lost["quotes_drawn"] is False and lost["quotes_kept"] is False
    assert [r["strict_json"] for r in rows] == [True, True, False]
    summary = summarize_rewrites(rows)
    assert summary["parse_ok"] == pytest.approx(2 / 3) and summary["quotes_kept"] == 0.5
    assert summary["quotes_drawn"] == 1.0
    assert summary["quoting_prompts"] == 2 and summary["latency_median_s"] == pytest.approx(0.1)


def test_the_table_has_one_column_per_label_and_skips_figures_nobody_has():
    results = {"raw": {"word_accuracy": 0.25}, "sft": {"word_accuracy": 0.75, "enhancer": {"parse_ok": 1.0}}}
    table = comparison_table(results)
    assert table.splitlines()[0] == "| figure | raw | sft |"
    assert "| OCR word accuracy (T2I) | 0.250 | 0.750 |" in table and "| parse_ok | — | 1.000 |" in table
    assert "edit success" not in table


@pytest.fixture
def small_sets(tmp_path):
    """Two posters (one quoting) and one word edit, as users might type them."""
    t2i = tmp_path / "t2i.jsonl"
    rows = [
        {"prompt": 'poster saying "OTTER"', "text": "OTTER"},
        {"prompt": "kayak on navy", "text": "KAYAK"},
    ]
    t2i.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copy(PROMPTS_DIR / "edits" / "000.png", tmp_path / "source.png")
    shutil.copy(PROMPTS_DIR / "edits" / "000-mask.png", tmp_path / "mask.png")
    edit = {"instruction": 'make it say "BENCH"', "text": "BENCH", "old_text": "REEF"}
    edit |= {"image": "source.png", "mask": "mask.png"}
    (tmp_path / "edits.jsonl").write_text(json.dumps(edit) + "\n")
    return [t2i, tmp_path / "edits.jsonl"]


def test_eval_enhancer_puts_raw_and_each_enhancer_side_by_side(endpoint, small_sets, tmp_path, cli):
    out = tmp_path / "cmp.json"
    prompts = [arg for path in small_sets for arg in ("--prompts", str(path))]
    code, output = cli(
        ["eval", "enhancer", "--model", DEMO, *FAST, *prompts, "--out", str(out), "--enhancer-model", "good"]
        + ["--enhancer", f"echo={endpoint.url}"]
    )
    assert code == 0, output.err
    report = json.loads(out.read_text())
    raw, echo = report["results"]["raw"], report["results"]["echo"]
    assert (
        "enhancer" not in raw
        and echo["enhancer"]["parse_ok"] == 1.0
        and echo["enhancer"]["quotes_kept"] == 1.0
    )
    drawn = [row["rewritten_prompt"] for row in echo["per_sample"]]
    assert drawn[0] == 'poster saying "OTTER", in sharp focus, soft light'
    assert echo["edits"]["samples"] == 1 and "edit_success" in echo["edits"]
    assert out.with_suffix(".md").read_text().startswith("| figure | raw | echo |")
    assert (tmp_path / "cmp.raw.sheet.png").is_file() and (tmp_path / "cmp.echo.sheet.png").is_file()
    assert "| parse_ok | — | 1.000 |" in output.out


def test_a_failing_enhancer_draws_the_prompts_as_typed(endpoint, small_sets, tmp_path, cli):
    out = tmp_path / "cmp.json"
    code, output = cli(
        ["eval", "enhancer", "--model", DEMO, *FAST, "--prompts", str(small_sets[0]), "--out", str(out)]
        + ["--enhancer", f"broken={endpoint.url}", "--enhancer-model", "garbage"]
    )
    assert code == 0, output.err
    results = json.loads(out.read_text())["results"]
    assert results["broken"]["enhancer"]["parse_ok"] == 0.0
    readings = {label: [r["reading"] for r in result["per_sample"]] for label, result in results.items()}
    assert readings["broken"] == readings["raw"]  # the same prompts, seeds and sizes: the same images


def test_eval_text_with_an_enhancer_adds_its_figures(endpoint, small_sets, tmp_path, cli):
    out = tmp_path / "text.json"
    code, output = cli(
        ["eval", "text", "--model", DEMO, *FAST, "--prompts", str(small_sets[0]), "--out", str(out)]
        + ["--enhancer", endpoint.url, "--enhancer-model", "good"]
    )
    assert code == 0, output.err
    result = json.loads(out.read_text())
    assert result["enhancer"]["rewrites"] == 2 and result["enhancer_spec"] == endpoint.url
    assert result["per_sample"][1]["rewritten_prompt"] == "kayak on navy, in sharp focus, soft light"


@pytest.mark.parametrize("label", ["noequals", "=x", "a/b=x", "raw=x"])
def test_eval_enhancer_bad_labels_are_one_error_line(label, small_sets, tmp_path, cli):
    code, output = cli(
        ["eval", "enhancer", "--model", DEMO, "--enhancer", label, "--out", str(tmp_path / "o.json")]
    )
    lines = [line for line in output.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), output.err
