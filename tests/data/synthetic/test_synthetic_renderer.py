"""The synthetic text renderer: determinism, coverage, captions, edit masks, shards and the trainer's view."""

import os
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from qwen_image2.cli import main
from qwen_image2.data.loader import read_manifest
from qwen_image2.data.synthetic import fonts, vocabulary
from qwen_image2.data.synthetic.captions import caption, quoted
from qwen_image2.data.synthetic.edits import EDITS, change_text_to, make_edit
from qwen_image2.data.synthetic.layouts import FULL, LAYOUTS, WORDS, build_scene, scene_size
from qwen_image2.data.synthetic.scene import (
    TextElement,
    element_box,
    padded,
    render_mask,
    render_scene,
    text_box,
)
from qwen_image2.data.synthetic.writer import TextDataConfig, write_text_dataset
from qwen_image2.errors import UserError

SMALL = TextDataConfig(tiers=(64, 128, 256), shard_size=8)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_text_dataset(tmp_path_factory.mktemp("text") / "a", 16, seed=3, config=SMALL)


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_same_seed_gives_identical_bytes_and_manifest_and_another_seed_does_not(dataset, tmp_path):
    again = write_text_dataset(tmp_path / "b", 16, seed=3, config=SMALL)
    other = write_text_dataset(tmp_path / "c", 16, seed=4, config=SMALL)
    assert pq.read_table(again).equals(pq.read_table(dataset))
    assert _files(again.parent) == _files(dataset.parent)
    assert pq.read_table(other)["caption"].to_pylist() != pq.read_table(dataset)["caption"].to_pylist()


def test_manifest_has_the_sample_schema_and_loads_in_the_trainer(dataset):
    table = pq.read_table(dataset)
    assert table.column_names[:7] == ["id", "path", "caption", "task", "conditions", "width", "height"]
    samples = read_manifest(str(dataset))
    assert len(samples) == 24 and {s.task for s in samples} == {"t2i", "edit"}
    assert len({s.id for s in samples}) == 24
    for sample in samples:
        with Image.open(dataset.parent / sample.path) as image:
            assert image.size == (sample.width, sample.height)
        assert all((dataset.parent / c).is_file() for c in sample.conditions)
        assert sample.width % 32 == 0 and sample.height % 32 == 0
    assert sorted(p.name for p in (dataset.parent / "shards").glob("*.parquet")) == [
        "00000.parquet",
        "00001.parquet",
        "00002.parquet",
    ]


def test_t2i_captions_quote_every_rendered_text_exactly(dataset):
    rows = [r for r in pq.read_table(dataset).to_pylist() if r["task"] == "t2i"]
    for row in rows:
        for text in row["texts"]:
            assert quoted(text, row["lang"]) in row["caption"], row


def test_renderer_covers_both_languages_every_layout_and_every_edit_kind():
    seen_layouts, seen_langs, seen_edits = set(), set(), set()
    for index in range(80):
        rng = np.random.default_rng([11, index])
        lang = ("en", "zh")[index % 2]
        scene = build_scene(rng, (128, 256, 512)[index % 3], lang, FULL)
        seen_layouts.add(scene.layout)
        seen_langs.add(scene.lang)
        seen_edits.add(make_edit(rng, scene, FULL).kind)
    assert seen_layouts == set(LAYOUTS) and seen_langs == {"en", "zh"} and seen_edits == set(EDITS)


@pytest.mark.parametrize("kind", sorted(EDITS))
def test_edit_changes_pixels_only_inside_its_mask_and_the_new_text_lies_inside_it(kind):
    checked = 0
    for index in range(40):
        rng = np.random.default_rng([7, index])
        lang = ("en", "zh")[index % 2]
        layout = ("word_poster", "sign", "poster", "slide")[index % 4]
        scene = LAYOUTS[layout](rng, scene_size(rng, 256, layout), lang, FULL)
        edit = EDITS[kind](rng, scene, FULL)
        if edit is None:
            continue
        source, target = np.asarray(render_scene(scene)), np.asarray(render_scene(edit.target))
        inside = np.asarray(render_mask(scene.size, list(edit.changed))) > 0
        assert (source[~inside] == target[~inside]).all(), edit.instruction
        assert (source[inside] != target[inside]).any(), edit.instruction
        for element in edit.target.elements:
            if isinstance(element, TextElement) and element.text == edit.new_text:
                x0, y0, x1, y1 = padded(element_box(element), scene.size)
                assert inside[y0:y1, x0:x1].all()
        checked += 1
    assert checked >= 10


def test_word_style_draws_each_letter_of_one_short_word_in_its_own_latent_cell_column():
    checked_edits = 0
    for index in range(30):
        rng = np.random.default_rng([5, index])
        scene = build_scene(rng, 128, "en", WORDS)
        (word,) = scene.elements
        assert scene.layout == "word_poster" and scene.size == (128, 128)
        assert word.text.isupper() and 3 <= len(word.text) <= 5
        assert word.font == "DejaVu Sans Mono Bold" and word.colour in WORDS.text_colours
        # Letter k's ink lies inside pixel column k + 1 of 16 px: one VAE latent cell column per letter.
        for k, letter in enumerate(word.text):
            x0, y0, x1, y1 = text_box(replace(word, text=letter, xy=(word.xy[0] + 16 * k, word.xy[1])))
            assert 16 * (k + 1) <= x0 and x1 <= 16 * (k + 2), (word.text, letter)
            if letter not in "QJ":  # no descender: the capitals are centred on the middle row
                assert abs((y0 + y1) / 2 - 64) <= 1
        assert caption(scene).startswith(
            f'A poster that reads "{word.text}" in {word.colour} bold monospaced letters, left-aligned'
        )
        edit = change_text_to(scene, 0, "GRID")
        if edit is not None:  # a changed word keeps the grid: same first column, line and size
            (changed,) = edit.target.elements
            assert (changed.xy, changed.size, changed.pitch) == (word.xy, word.size, word.pitch)
            checked_edits += 1
    assert checked_edits == 30


def test_held_out_words_are_never_training_words():
    assert not set(vocabulary.HELDOUT_EN) & set(vocabulary.EN_WORDS)
    assert not set(vocabulary.HELDOUT_ZH) & set(vocabulary.ZH_WORDS)
    rng = np.random.default_rng(0)
    drawn = {vocabulary.en_word(rng, 6, pseudo=0.5) for _ in range(3000)}
    assert not drawn & set(vocabulary.HELDOUT_EN)


def test_rerun_resumes_finished_shards_and_refuses_other_settings(tmp_path):
    manifest = write_text_dataset(tmp_path, 6, seed=0, config=TextDataConfig(tiers=(64,), shard_size=4))
    shard = tmp_path / "shards" / "00000.parquet"
    before = os.stat(shard).st_mtime_ns
    write_text_dataset(tmp_path, 6, seed=0, config=TextDataConfig(tiers=(64,), shard_size=4))
    assert os.stat(shard).st_mtime_ns == before and pq.read_table(manifest).num_rows == 9
    with pytest.raises(UserError, match="other settings"):
        write_text_dataset(tmp_path, 7, seed=0, config=TextDataConfig(tiers=(64,), shard_size=4))


def test_missing_cjk_font_is_a_user_error_naming_the_package(monkeypatch):
    missing = tuple(fonts.FontSpec(f.name, "/nonexistent/" + f.path, f.style, f.bold) for f in fonts.CJK)
    monkeypatch.setattr(fonts, "CJK", missing)
    with pytest.raises(UserError, match="fonts-noto-cjk"):
        TextDataConfig(langs=("en", "zh")).check()


def test_synth_cli_writes_words_and_text_kinds(tmp_path, capsys):
    main(["synth", "--kind", "words", "--out", str(tmp_path / "w"), "--n", "4"])
    main(["synth", "--out", str(tmp_path / "t"), "--n", "4", "--tiers", "128", "--langs", "zh"])
    words = pq.read_table(tmp_path / "w" / "manifest.parquet").to_pylist()
    text = pq.read_table(tmp_path / "t" / "manifest.parquet").to_pylist()
    assert {r["layout"] for r in words} == {"word_poster"} and {r["tier"] for r in words} <= {64, 128}
    assert {r["lang"] for r in text} == {"zh"} and {r["tier"] for r in text} == {128}
    with pytest.raises(SystemExit) as exit_:
        main(["synth", "--out", str(tmp_path / "x"), "--tiers", "100"])
    assert exit_.value.code == 2 and "choose from 64, 128" in capsys.readouterr().err


def test_paragraph_heading_fits_the_width_it_was_sized_for():
    from qwen_image2.data.synthetic.layouts import FULL, paragraph
    from qwen_image2.data.synthetic.scene import text_box

    for seed in range(20):
        for lang in ("en", "zh"):
            scene = paragraph(np.random.default_rng(seed), (256, 256), lang, FULL)
            heading = scene.elements[0]
            x0, _, x1, _ = text_box(heading)
            assert heading.size == 6 or x1 - x0 <= 0.7 * 256 + 1, (seed, lang, heading)
