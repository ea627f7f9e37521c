"""`qwen-image2 arena ...` end to end in-process: import, export, ratings (JSON + PNG), and clean errors."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from arena_helpers import MODELS, service_voter
from PIL import Image

from qwen_image2.cli import main
from qwen_image2.evaluation.arena.service import issue_battle, record_vote
from qwen_image2.evaluation.arena.settings import ArenaSettings
from qwen_image2.evaluation.arena.storage import build_engine, build_sessionmaker
from qwen_image2.evaluation.arena.votes import Vote, vote_to_json


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def synthetic_votes(path, n: int = 1500):
    """Two boards; on T2I the true order is sharp > clear > blurry, with categories and voters."""
    rng = np.random.default_rng(0)
    strength = {"sharp": 1200.0, "clear": 1000.0, "blurry": 800.0}
    lines = []
    for k in range(n):
        a, b = rng.choice(list(strength), size=2, replace=False)
        p = 1.0 / (1.0 + 10 ** ((strength[b] - strength[a]) / 400.0))
        winner = "model_a" if rng.random() < p else "model_b"
        category = ["text rendering", "portrait"][k % 2]
        lines.append(
            Vote(a, b, winner, board="t2i", category=category, voter=f"v{k % 30}", prompt=f"p{k % 40}")
        )
        lines.append(Vote(a, b, "tie", board="edit", voter=f"v{k % 30}"))
    path.write_text("".join(vote_to_json(vote) + "\n" for vote in lines))


def test_ratings_writes_a_list_per_board_and_category_and_a_png(tmp_path, capsys):
    votes, out = tmp_path / "votes.jsonl", tmp_path / "out" / "ratings.json"
    synthetic_votes(votes)
    code, stdout, _ = run(capsys, "arena", "ratings", str(votes), "--out", str(out), "--bootstrap", "50")
    assert code == 0
    ratings = json.loads(out.read_text())
    assert set(ratings) == {"t2i", "t2i/portrait", "t2i/text rendering", "edit"}
    assert [row["model"] for row in ratings["t2i"]] == ["sharp", "clear", "blurry"]
    for row in ratings["t2i"]:
        assert set(row) == {"model", "rating", "ci_low", "ci_high", "votes"}
        assert row["ci_low"] <= row["rating"] <= row["ci_high"]
    summary = json.loads(stdout)
    assert summary["votes_read"] == 3000 and summary["plot"] == str(
        out.with_name(f"{out.stem}.leaderboard.png")
    )
    with Image.open(out.with_name(f"{out.stem}.leaderboard.png")) as png:
        assert png.format == "PNG" and png.width > 400


def test_ratings_anchor_pins_a_model(tmp_path, capsys):
    votes, out = tmp_path / "votes.jsonl", tmp_path / "ratings.json"
    synthetic_votes(votes, n=300)
    args = ["arena", "ratings", str(votes), "--out", str(out), "--bootstrap", "0", "--anchor", "clear=1168"]
    assert run(capsys, *args)[0] == 0
    rows = {row["model"]: row["rating"] for row in json.loads(out.read_text())["t2i"]}
    assert rows["clear"] == pytest.approx(1168.0)


@pytest.mark.parametrize(
    "extra, content, message",
    [
        (
            [],
            '{"model_a": "x", "model_b": "y", "winner": "maybe"}\n',
            "votes.jsonl:1: 'winner' must be one of",
        ),
        (["--anchor", "nobody=1000"], '{"model_a": "x", "model_b": "y", "winner": "tie"}\n', "has no votes"),
        (["--anchor", "x"], '{"model_a": "x", "model_b": "y", "winner": "tie"}\n', "write MODEL=RATING"),
    ],
)
def test_ratings_input_mistakes_are_one_error_line_and_exit_2(tmp_path, capsys, extra, content, message):
    votes = tmp_path / "votes.jsonl"
    votes.write_text(content)
    code, _, err = run(capsys, "arena", "ratings", str(votes), "--out", str(tmp_path / "r.json"), *extra)
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_import_then_export_then_ratings(tmp_path, capsys, set_dirs):
    db = f"sqlite:///{tmp_path / 'arena.db'}"
    for (model, board), folder in set_dirs.items():
        code, out, _ = run(
            capsys, "arena", "import", str(folder), "--model", model, "--board", board, "--db", db
        )
        assert code == 0 and json.loads(out)["new_generations"] > 0
    engine = build_engine(db)
    with build_sessionmaker(engine).begin() as session:
        tickets, throttle, voter = service_voter(session)
        for _ in range(12):
            battle = issue_battle(session, tickets, throttle, voter, "t2i", ArenaSettings())
            choice = "left" if battle.left.model == MODELS[0] else "right"
            record_vote(session, tickets, voter, battle.ticket, choice, ArenaSettings())
    engine.dispose()
    exported = tmp_path / "votes.jsonl"
    code, out, _ = run(capsys, "arena", "export", "--db", db, "--out", str(exported))
    assert code == 0 and json.loads(out)["votes"] == 12
    code, _, _ = run(
        capsys, "arena", "ratings", str(exported), "--out", str(tmp_path / "r.json"), "--no-guards"
    )
    assert code == 0
    assert json.loads((tmp_path / "r.json").read_text())["t2i"][0]["model"] == MODELS[0]


def test_import_of_a_folder_without_prompts_is_a_user_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(
        capsys, "arena", "import", str(tmp_path / "empty"), "--model", "m", "--db", "sqlite://"
    )
    assert code == 2 and "no prompts.jsonl" in err


def one_error_line(err: str) -> bool:
    return err.startswith("error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["nosuchdb://x", "postgresql://", "not a url"])
def test_serve_with_a_bad_store_is_one_error_line_and_exit_2(cli, url):
    code, captured = cli(["arena", "serve", "--db", url, "--port", "1"])
    assert code == 2 and one_error_line(captured.err), captured.err
    assert "--db" in captured.err


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_serve_on_a_port_out_of_range_is_one_error_line_and_exit_2(cli, sqlite_url, port):
    code, captured = cli(["arena", "serve", "--db", sqlite_url, "--port", port])
    assert code == 2 and one_error_line(captured.err), captured.err


def test_serve_on_a_port_in_use_is_one_error_line_and_exit_2(cli, sqlite_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        code, captured = cli(["arena", "serve", "--db", sqlite_url, "--port", port])
    assert code == 2 and one_error_line(captured.err), captured.err
    assert f"--port {port}" in captured.err


@pytest.mark.parametrize("command", ["import", "export"])
def test_import_and_export_with_a_bad_store_are_one_error_line_and_exit_2(cli, tmp_path, set_dirs, command):
    args = {
        "import": ["import", str(set_dirs[(MODELS[0], "t2i")]), "--model", "m"],
        "export": ["export", "--out", str(tmp_path / "votes.jsonl")],
    }[command]
    code, captured = cli(["arena", *args, "--db", "nosuchdb://x"])
    assert code == 2 and one_error_line(captured.err), captured.err
    assert captured.err.startswith("error: --db nosuchdb://x")


def test_ratings_out_ending_in_png_keeps_the_json_and_the_picture_apart(tmp_path, capsys):
    votes, out = tmp_path / "votes.jsonl", tmp_path / "r.png"
    synthetic_votes(votes)
    # Five bootstrap rounds: an interval that may miss its point estimate still plots.
    code, stdout, _ = run(capsys, "arena", "ratings", str(votes), "--out", str(out), "--bootstrap", "5")
    assert code == 0
    assert set(json.loads(out.read_text())) >= {"t2i", "edit"}  # still the JSON
    with Image.open(tmp_path / "r.leaderboard.png") as png:
        assert png.format == "PNG"
