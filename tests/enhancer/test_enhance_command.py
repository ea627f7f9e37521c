"""`qwen-image2 enhance`, and `generate`/`edit --enhance`: the rewrite is what the generator gets."""

import json

from PIL import Image

from qwen_image2.enhancer.canvas import size_for

DEMO = "checkpoints/tiny-demo"  # training side 128: the enhancer's canvas is scaled to it
FAST = ["--steps", "2", "--seed", "3", "--guidance", "1"]


def test_enhance_prints_the_rewrite_as_json(endpoint, cli):
    code, output = cli(["enhance", "a red fox", "--enhancer", endpoint.url, "--enhancer-model", "good"])
    assert code == 0, output.err
    result = json.loads(output.out)
    assert result["rewritten_prompt"] == "a red fox, in sharp focus, soft light"
    assert (result["aspect_ratio"], result["size"], result["parse_ok"]) == (
        "16:9",
        list(size_for("16:9")),
        True,
    )
    assert result["reason"] is None and result["latency_s"] > 0


def test_enhance_falls_back_with_the_reason_and_exit_0(endpoint, cli):
    code, output = cli(
        [
            "enhance",
            "a red fox",
            "--enhancer",
            endpoint.url,
            "--enhancer-model",
            "garbage",
            "--canvas-side",
            "128",
        ]
    )
    assert code == 0
    result = json.loads(output.out)
    assert (result["rewritten_prompt"], result["parse_ok"], result["size"]) == (
        "a red fox",
        False,
        [128, 128],
    )
    assert "no JSON" in result["reason"]


def test_enhance_bad_input_is_one_error_line(tiny_enhancer_dir, tmp_path, cli):
    cases = [
        ["enhance", "   ", "--enhancer", str(tiny_enhancer_dir)],
        ["enhance", "x", "--enhancer", str(tmp_path / "none")],
        ["enhance", "x", "--enhancer", str(tiny_enhancer_dir), "--image", str(tmp_path / "missing.png")],
        ["enhance", "x", "--enhancer", "ftp://host/v1"],
        ["enhance", "x", "--enhancer", "http://127.0.0.1:9/v1"],  # an endpoint needs --enhancer-model
    ]
    for args in cases:
        code, output = cli(args)
        lines = [line for line in output.err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, output.err)


def test_generate_enhance_draws_the_rewrite_at_the_enhancer_canvas(endpoint, tmp_path, cli):
    enhanced, direct = tmp_path / "enhanced.png", tmp_path / "direct.png"
    code, output = cli(
        ["generate", "a red fox", "--model", DEMO, *FAST, "--out", str(enhanced)]
        + ["--enhance", endpoint.url, "--enhancer-model", "good"]
    )
    assert code == 0, output.err
    assert "enhanced (16:9" in output.err and "in sharp focus, soft light" in output.err
    width, height = size_for("16:9", 128)
    code, _ = cli(
        ["generate", "a red fox, in sharp focus, soft light", "--model", DEMO, *FAST]
        + ["--size", f"{width}x{height}", "--out", str(direct)]
    )
    assert code == 0
    assert Image.open(enhanced).size == (width, height)
    assert enhanced.read_bytes() == direct.read_bytes()


def test_generate_enhance_keeps_an_explicit_size_and_a_failed_rewrite_keeps_the_prompt(
    endpoint, tmp_path, cli
):
    out = tmp_path / "out.png"
    code, output = cli(
        ["generate", "a red fox", "--model", DEMO, *FAST, "--size", "64x96", "--out", str(out)]
        + ["--enhance", endpoint.url, "--enhancer-model", "error"]
    )
    assert code == 0, output.err
    assert "fell back to the prompt as given" in output.err
    assert Image.open(out).size == (64, 96)


def test_edit_enhance_rewrites_the_instruction_with_the_source_image(endpoint, tmp_path, cli):
    source, out = tmp_path / "source.png", tmp_path / "edited.png"
    Image.new("RGB", (128, 128), "white").save(source)
    code, output = cli(
        ["edit", 'make it say "DOG"', "--image", str(source), "--model", DEMO, *FAST, "--out", str(out)]
        + ["--enhance", endpoint.url, "--enhancer-model", "good"]
    )
    assert code == 0, output.err
    assert "enhanced (16:9" in output.err and 'make it say "DOG", in sharp focus' in output.err
    assert endpoint.received[-1]["messages"][-1]["content"][0]["text"] == "<image1>:"  # the image went along
    assert Image.open(out).size == size_for("16:9", 128)
