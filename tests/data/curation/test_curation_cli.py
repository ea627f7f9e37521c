"""`qwen-image2 curate` as a user meets it: clean one-line errors, JSON output, re-thresholding."""

from __future__ import annotations

import json

import pytest
from curation_corpus import plain_corpus

from qwen_image2.cli import main


def run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def curate_argv(tmp_path, *options: str) -> list[str]:
    """`curate` of the corpus in tmp_path/c into tmp_path/o, with `options`."""
    return ["curate", str(tmp_path / "c"), "--out", str(tmp_path / "o"), *options]


def test_default_filters_without_tokenizer_stop_with_the_fix(tmp_path, capsys):
    plain_corpus(tmp_path / "c", 2)
    code, _, err = run(
        curate_argv(tmp_path, "--workers", "0", "--clip-weights", "random"),
        capsys,
    )
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error:")
    assert "--tokenizer" in err and "--filters" in err


def test_a_rejected_run_writes_nothing_so_the_corrected_command_runs(tmp_path, capsys):
    plain_corpus(tmp_path / "c", 2)
    code, _, err = run(curate_argv(tmp_path, "--workers", "0", "--clip-weights", "random"), capsys)
    assert code == 2 and "--tokenizer" in err
    assert not (tmp_path / "o" / "run.json").exists()
    code, _, err = run(curate_argv(tmp_path, "--workers", "0", "--filters", "broken,resolution"), capsys)
    assert code == 0, err
    assert (tmp_path / "o" / "manifest.parquet").is_file()


def test_default_filters_without_clip_weights_stop_with_the_fix(tmp_path, capsys, tokenizer_dir):
    plain_corpus(tmp_path / "c", 2)
    code, _, err = run(
        curate_argv(tmp_path, "--workers", "0", "--tokenizer", str(tokenizer_dir)),
        capsys,
    )
    assert code == 2 and "--clip-weights" in err and "--filters" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filters", "broken,entrpy"], "did you mean 'entropy'"),
        (["--stage", "s3-521p"], "did you mean 's3-512p'"),
        (["--format", "yaml"], "--format"),
    ],
)
def test_bad_options_name_what_was_wrong(tmp_path, capsys, args, message):
    plain_corpus(tmp_path / "c", 1)
    code, _, err = run(curate_argv(tmp_path, "--workers", "0", *args), capsys)
    assert code == 2 and message in err


def test_missing_source_and_missing_manifest(tmp_path, capsys):
    code, _, err = run(["curate", str(tmp_path / "absent"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "does not exist" in err
    code, _, err = run(
        ["curate", "--rethreshold", str(tmp_path / "absent.parquet"), "--stage", "s3-512p"], capsys
    )
    assert code == 2 and "no such manifest" in err


def test_stages_file_with_a_typo_names_the_closest_key(tmp_path, capsys):
    (tmp_path / "stages.yaml").write_text("stages:\n  mine:\n    entropy: {min_scor: 4}\n")
    plain_corpus(tmp_path / "c", 1)
    code, _, err = run(
        curate_argv(
            tmp_path,
            "--stage",
            "mine",
            "--stages-file",
            str(tmp_path / "stages.yaml"),
            "--filters",
            "entropy",
        ),
        capsys,
    )
    assert code == 2 and "min_scor" in err and "did you mean 'min_score'" in err


def test_curate_then_rethreshold_from_the_command_line(tmp_path, capsys):
    plain_corpus(tmp_path / "c", 4, sizes=((300, 280), (700, 600)))
    code, out, _ = run(
        curate_argv(
            tmp_path, "--workers", "0", "--filters", "broken,resolution,duplicate,entropy", "--format", "json"
        ),
        capsys,
    )
    assert code == 0
    report = json.loads(out)
    assert report["rows_in"] == 4 and report["rows_passed"] == 4
    code, out, _ = run(
        ["curate", "--rethreshold", str(tmp_path / "o" / "manifest.parquet"), "--stage", "s3-512p"], capsys
    )
    assert code == 0 and "passed 2 of 4" in out and "rejected by resolution: 2" in out
    assert (tmp_path / "o" / "stage-s3-512p" / "report.png").is_file()
