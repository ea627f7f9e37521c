"""SFT data by reverse engineering (`enhancer data`) and the held-out colloquial sets."""

import json
import re

import numpy as np
import pytest

from qwen_image2.data.synthetic.vocabulary import EN_WORDS, HELDOUT_EN
from qwen_image2.data.synthetic.writer import TextDataConfig, write_text_dataset
from qwen_image2.enhancer import colloquial, phrasings
from qwen_image2.enhancer.degrade import colloquial_caption, colloquial_poster, parse_edit, parse_poster
from qwen_image2.enhancer.endpoint import EndpointBackend
from qwen_image2.enhancer.reverse import LLMDegrader, make_data
from qwen_image2.enhancer.rows import read_rows
from qwen_image2.errors import UserError
from qwen_image2.evaluation.heldout import PROMPTS_DIR
from qwen_image2.evaluation.text_rendering import load_prompts

CAPTION = 'A poster that reads "BEMP" in light blue bold monospaced letters, left-aligned on a flat navy background.'


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    config = TextDataConfig(style="words", tiers=(128,), langs=("en",), shard_size=64)
    folder = write_text_dataset(tmp_path_factory.mktemp("words") / "grid", 60, seed=1, config=config)
    return folder


def test_captions_parse_into_their_parts():
    poster = parse_poster(CAPTION)
    assert (poster.text, poster.colour, poster.background) == ("BEMP", "light blue", "navy")
    assert (poster.font, poster.placement) == ("bold monospaced", "left-aligned")
    assert parse_edit('Make the text read "DOG" instead of "CAT".') == (
        "change_text",
        {"new": "DOG", "old": "CAT"},
    )
    assert parse_edit('Move the text "CAT" to the top left.') == (
        "move",
        {"old": "CAT", "where": "the top left"},
    )
    assert parse_poster("A red fox.") is None and parse_edit("Add a blue circle at the top.") is None


def test_degraded_prompts_keep_the_word_and_state_only_what_they_kept():
    poster = parse_poster(CAPTION)
    seen = set()
    for seed in range(200):
        made = colloquial_poster(np.random.default_rng(seed), poster)
        seen.add(made.specificity)
        assert "BEMP" in made.prompt  # verbatim, quoted or bare
        assert ("navy" in made.prompt.lower()) == ("background" in made.requested)
        assert ("light blue" in made.prompt.lower()) == ("text_colour" in made.requested)
        assert made.template in {t for f in phrasings.TRAIN for t in f.templates}
    assert seen == {0, 1, 2, 3}
    generic = colloquial_caption(
        np.random.default_rng(0), 'A sign on a wall. It reads "OPEN". Night, neon.', 0
    )
    assert '"OPEN"' in generic.prompt and generic.prompt.lower() == 'it reads "open"'  # the quoting sentence


def test_held_out_families_never_share_a_template_with_training_ones():
    train = {t for f in phrasings.TRAIN for t in f.templates}
    held = {t for f in phrasings.HELDOUT for t in f.templates}
    assert not train & held
    assert not {f.name for f in phrasings.TRAIN} & {f.name for f in phrasings.HELDOUT}


def test_data_is_deterministic_per_seed_and_rows_read_back(manifest, tmp_path):
    first = make_data([manifest], tmp_path / "a", seed=3, variants=2, eval_share=0.1)
    again = make_data([manifest], tmp_path / "b", seed=3, variants=2, eval_share=0.1)
    other = make_data([manifest], tmp_path / "c", seed=4, variants=2, eval_share=0.1)
    text = (tmp_path / "a" / "rows.jsonl").read_text()
    assert text == (tmp_path / "b" / "rows.jsonl").read_text()
    assert text != (tmp_path / "c" / "rows.jsonl").read_text()
    assert first == again and first["rows"] + first["eval_rows"] == other["rows"] + other["eval_rows"]
    # A row's randomness is its own: a shorter run makes the same first rows.
    make_data([manifest], tmp_path / "d", seed=3, variants=2, limit=5, eval_share=0.0)
    rows = read_rows(tmp_path / "a" / "rows.jsonl") + read_rows(tmp_path / "a" / "eval.jsonl")
    by_id = {r.id: r for r in rows}
    for row in read_rows(tmp_path / "d" / "rows.jsonl"):
        assert by_id[row.id] == row
    assert {r.task for r in rows} == {"t2i", "edit"}
    for row in rows:
        for text in re.findall(r'"([^"]+)"', row.rewrite):
            # requested text is never altered; an edit may leave the old text to the source image
            assert text in row.prompt or text in row.ocr, (row.prompt, row.rewrite)
        assert row.reasoning.startswith("Given:") and "Infer:" in row.reasoning
    edits = [r for r in rows if r.task == "edit"]
    assert all(r.images and (tmp_path / "a" / r.images[0]).is_file() and r.ocr for r in edits)
    dropped = [r for r in rows if "drop:background" in r.degradations and r.task == "t2i"]
    assert dropped and all("background" in r.reasoning.split("Missing:")[1] for r in dropped)


def test_llm_degrader_paraphrases_and_falls_back_when_unusable(manifest, tmp_path, endpoint):
    terse = LLMDegrader(EndpointBackend(endpoint.url, "terse", "EMPTY", False, 5.0, 0))
    summary = make_data([manifest], tmp_path / "llm", variants=1, limit=10, eval_share=0.0, degrader=terse)
    rows = read_rows(tmp_path / "llm" / "rows.jsonl")
    # The paraphrase keeps the caption's first quote; an edit naming two quotes loses one and falls back.
    llm = [r for r in rows if r.template == "llm"]
    assert llm and all(r.prompt.endswith(" poster") for r in llm)
    assert summary["llm_fallbacks"] == len(rows) - len(llm)
    garbage = LLMDegrader(EndpointBackend(endpoint.url, "garbage", "EMPTY", False, 5.0, 0))
    summary = make_data([manifest], tmp_path / "g", variants=1, limit=4, eval_share=0.0, degrader=garbage)
    assert summary["llm_fallbacks"] == 4
    down = LLMDegrader(EndpointBackend("http://127.0.0.1:9/v1", "terse", "EMPTY", False, 2.0, 0))
    with pytest.raises(UserError, match="degrader did not answer"):
        make_data([manifest], tmp_path / "down", variants=1, limit=2, degrader=down)


def test_data_command_and_bad_manifests(manifest, tmp_path, cli):
    code, output = cli(["enhancer", "data", str(manifest), "--out", str(tmp_path / "o"), "--limit", "6"])
    assert code == 0, output.err
    assert json.loads(output.out.splitlines()[0])["rows"] > 0
    assert (tmp_path / "o" / "summary.json").is_file()
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    for path, message in ((broken, "not a parquet file"), (tmp_path / "none.parquet", "does not exist")):
        code, output = cli(["enhancer", "data", str(path), "--out", str(tmp_path / "x")])
        assert code == 2 and message in output.err, output.err
        assert not (tmp_path / "x" / "rows.jsonl").exists()


def test_colloquial_sets_are_held_out_and_match_their_generator(tmp_path):
    written = colloquial.write_colloquial_sets(tmp_path)
    for path in written:
        assert path.read_text() == (PROMPTS_DIR / path.name).read_text(), path.name
    sizes = {"colloquial_t2i.jsonl": 100, "colloquial_edits.jsonl": 50}
    for name, least in sizes.items():
        lines = [json.loads(line) for line in (PROMPTS_DIR / name).read_text().splitlines()]
        entries = load_prompts(PROMPTS_DIR / name)
        assert len(entries) >= least
        assert all(e.text in HELDOUT_EN and e.text not in EN_WORDS and e.text in e.prompt for e in entries)
        assert sum(line["heldout_family"] for line in lines) >= len(lines) / 3
        held = {t for f in phrasings.HELDOUT for t in f.templates}
        assert all(
            line["heldout_family"] == (line["family"] in {f.name for f in phrasings.HELDOUT})
            for line in lines
        )
        assert held  # the families named exist
    reported = {e.prompt for name in sizes for e in load_prompts(PROMPTS_DIR / name)}
    selection = {
        e.prompt
        for n in ("colloquial_select_t2i.jsonl", "colloquial_select_edits.jsonl")
        for e in load_prompts(PROMPTS_DIR / n)
    }
    assert not reported & selection
