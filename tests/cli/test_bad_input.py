"""Every command, fed bad input: exit code 2, ONE `error:` line on stderr naming the problem, no traceback,
and nothing written (the run happens in an empty folder, compared before and after)."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from qwen_image2 import cli as cli_module

REPO = Path(__file__).resolve().parents[2]
TINY_RECIPE = str(REPO / "recipes" / "tiny.yaml")
VAE_RECIPE = str(REPO / "recipes" / "vae-tiny.yaml")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Inputs good and bad, in a `fixtures` folder; the commands run (and must write nothing) in `work`."""
    root = tmp_path / "fixtures"
    images = root / "images"
    images.mkdir(parents=True)
    Image.new("RGB", (64, 64), "red").save(images / "good.png")
    Image.new("RGB", (4000, 10), "blue").save(root / "tall.png")
    (root / "notes.png").write_text("not an image")
    (root / "file.txt").write_text("a file, not a folder")
    (root / "votes.jsonl").write_text("this is not json\n")
    (root / "manifest.parquet").write_text("not parquet at all")
    row = {"id": "a", "path": "images/good.png", "caption": "x", "task": "t2i", "conditions": []}
    pd.DataFrame([{**row, "width": 64, "height": 64, "passed": True}]).to_parquet(root / "good.parquet")
    (root / "prompts.jsonl").write_text('{"prompt": "x"')
    bad_model = root / "bad-model"
    bad_model.mkdir()
    (bad_model / "model_index.json").write_text("{not json")
    vae = root / "saved-vae"
    vae.mkdir()
    (vae / "config.json").write_text("{}")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return {
        "good": images / "good.png",
        "images": images,
        "tall": root / "tall.png",
        "text": root / "notes.png",
        "file": root / "file.txt",
        "votes": root / "votes.jsonl",
        "manifest": root / "manifest.parquet",
        "good_manifest": root / "good.parquet",
        "prompts": root / "prompts.jsonl",
        "bad_model": bad_model,
        "vae": vae,
        "missing": root / "missing.png",
        "missing_dir": root / "no-such-folder",
        "out": work / "out",
        "work": work,
    }


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


GEN = ["generate", "a cat", "-m", "tiny", "--size", "32x32", "--steps", "1"]
EDIT = ["edit", "x", "-m", "tiny", "--image", "{good}", "--steps", "1", "--resolution", "32"]
VAE = ["eval", "vae", "-m", "tiny", "--data", "{images}", "--out", "{out}/r.json"]
PAIRS = ["eval", "pairs", "{images}", "{images}", "--out", "{out}/p.json"]
TEXT = ["eval", "text", "-m", "tiny", "--out", "{out}/t.json"]
CACHE = ["cache", "{manifest}", "-m", "tiny", "-o", "{out}", "--resolution", "64"]
SYNTH = ["synth", "--out", "{out}", "--n", "2"]
CURATE = ["curate", "{images}", "--out", "{out}", "--workers", "0"]
RATINGS = ["arena", "ratings", "{votes}", "--out", "{out}/r.json"]
ENHANCE = ["enhance", "a poster", "--enhancer", "{missing_dir}"]
PE_DATA = ["enhancer", "data", "{good_manifest}", "--out", "{out}"]
PE_GRPO = ["enhancer", "grpo", str(REPO / "recipes" / "enhancer-grpo-tiny.yaml"), "output_dir={out}"]
PE_SFT = ["enhancer", "sft", str(REPO / "recipes" / "enhancer-sft-tiny.yaml"), "output_dir={out}"]
PE_EVAL = ["eval", "enhancer", "-m", "tiny", "--out", "{out}/e.json"]
TRAIN = ["train", TINY_RECIPE, "output_dir={out}"]
TRAIN_VAE = ["train-vae", VAE_RECIPE, "output_dir={out}"]

# (id, args, a piece the error line must contain[, a mark])
CASES = [
    # generate
    ("generate-size-not-WxH", [*GEN, "--size", "big"], "--size"),
    ("generate-size-not-32", [*GEN, "--size", "100x64"], "--size"),
    ("generate-size-zero", [*GEN, "--size", "0x64"], "--size"),
    ("generate-size-negative", [*GEN, "--size", "-32x64"], "--size"),
    ("generate-size-too-many-pixels", [*GEN, "--size", "32768x32768"], "--size"),
    ("generate-steps-0", [*GEN, "--steps", "0"], "--steps"),
    ("generate-steps-negative", [*GEN, "--steps", "-2"], "--steps"),
    ("generate-steps-not-int", [*GEN, "--steps", "abc"], "--steps"),
    ("generate-num-images-0", [*GEN, "--num-images", "0"], "--num-images"),
    ("generate-guidance-negative", [*GEN, "--guidance", "-1"], "--guidance"),
    ("generate-device-cuda", [*GEN, "--device", "cuda"], "--device", NO_CUDA),
    ("generate-device-nonsense", [*GEN, "--device", "nonsense"], "--device"),
    ("generate-dtype-nonsense", [*GEN, "--dtype", "nonsense"], "--dtype"),
    ("generate-out-jpg", [*GEN, "--out", "{work}/a.jpg"], ".jpg"),
    ("generate-out-no-suffix", [*GEN, "--out", "{work}/a"], "--out"),
    ("generate-out-under-a-file", [*GEN, "--out", "{file}/a.png"], "is not a folder"),
    ("generate-out-is-a-folder", [*GEN, "--out", "{images}"], "is a folder"),
    ("generate-model-missing", [*GEN, "--model", "{missing_dir}"], "does not exist"),
    ("generate-model-is-a-file", [*GEN, "--model", "{file}"], "is not a folder"),
    ("generate-model-index-malformed", [*GEN, "--model", "{bad_model}"], "model_index.json"),
    ("generate-unknown-preset", [*GEN, "--model", "no-such-preset"], "no-such-preset"),
    # edit
    ("edit-image-missing", [*EDIT, "--image", "{missing}"], "does not exist"),
    ("edit-image-not-an-image", [*EDIT, "--image", "{text}"], "cannot read"),
    ("edit-image-is-a-folder", [*EDIT, "--image", "{images}"], "is not a file"),
    ("edit-image-extreme-aspect", [*EDIT, "--image", "{tall}"], "aspect"),
    ("edit-too-many-images", EDIT + ["--image", "{good}"] * 10, "at most 10"),
    ("edit-resolution-0", [*EDIT, "--resolution", "0"], "--resolution"),
    ("edit-resolution-negative", [*EDIT, "--resolution", "-64"], "--resolution"),
    ("edit-size-not-WxH", [*EDIT, "--size", "64"], "--size"),
    ("edit-steps-0", [*EDIT, "--steps", "0"], "--steps"),
    ("edit-num-images-0", [*EDIT, "--num-images", "0"], "--num-images"),
    ("edit-device-cuda", [*EDIT, "--device", "cuda"], "--device", NO_CUDA),
    ("edit-device-nonsense", [*EDIT, "--device", "nonsense"], "--device"),
    ("edit-dtype-nonsense", [*EDIT, "--dtype", "nonsense"], "--dtype"),
    ("edit-out-jpg", [*EDIT, "--out", "{work}/a.jpeg"], ".jpeg"),
    ("edit-out-no-suffix", [*EDIT, "--out", "{work}/a"], "--out"),
    # eval vae
    ("eval-vae-benchmark-unknown", [*VAE, "--benchmark", "nosuch"], "--benchmark"),
    ("eval-vae-size-0", [*VAE, "--size", "0"], "--size"),
    ("eval-vae-size-not-16", [*VAE, "--size", "40"], "--size"),
    ("eval-vae-batch-size-0", [*VAE, "--batch-size", "0"], "--batch-size"),
    ("eval-vae-batch-size-negative", [*VAE, "--batch-size", "-1"], "--batch-size"),
    ("eval-vae-worst-negative", [*VAE, "--worst", "-1"], "--worst"),
    ("eval-vae-lpips-unknown", [*VAE, "--lpips", "nosuch"], "--lpips"),
    ("eval-vae-device-cuda", [*VAE, "--device", "cuda"], "--device", NO_CUDA),
    ("eval-vae-device-nonsense", [*VAE, "--device", "nonsense"], "--device"),
    ("eval-vae-data-missing", [*VAE, "--data", "{missing_dir}"], "does not exist"),
    ("eval-vae-data-is-a-file", [*VAE, "--data", "{file}"], "is not a folder"),
    ("eval-vae-model-index-malformed", [*VAE, "--model", "{bad_model}"], "model_index.json"),
    ("eval-vae-out-under-a-file", [*VAE, "--out", "{file}/r.json"], "is not a folder"),
    ("eval-vae-fid-weights-missing", [*VAE, "--fid-weights", "{missing}"], "--fid-weights"),
    # eval pairs
    ("eval-pairs-reference-missing", ["eval", "pairs", "{missing_dir}", "{images}"], "does not exist"),
    ("eval-pairs-prediction-is-a-file", ["eval", "pairs", "{images}", "{file}"], "is not a folder"),
    ("eval-pairs-benchmark-unknown", [*PAIRS, "--benchmark", "nosuch"], "--benchmark"),
    ("eval-pairs-lpips-unknown", [*PAIRS, "--lpips", "nosuch"], "--lpips"),
    ("eval-pairs-worst-negative", [*PAIRS, "--worst", "-1"], "--worst"),
    ("eval-pairs-device-nonsense", [*PAIRS, "--device", "nonsense"], "--device"),
    ("eval-pairs-out-under-a-file", [*PAIRS, "--out", "{file}/p.json"], "is not a folder"),
    # eval text
    ("eval-text-limit-negative", [*TEXT, "--limit", "-1"], "--limit"),
    ("eval-text-steps-0", [*TEXT, "--steps", "0"], "--steps"),
    ("eval-text-size-0", [*TEXT, "--size", "0"], "--size"),
    ("eval-text-size-not-32", [*TEXT, "--size", "48"], "--size"),
    ("eval-text-device-cuda", [*TEXT, "--device", "cuda"], "--device", NO_CUDA),
    ("eval-text-device-nonsense", [*TEXT, "--device", "nonsense"], "--device"),
    ("eval-text-dtype-nonsense", [*TEXT, "--dtype", "nonsense"], "--dtype"),
    ("eval-text-prompts-missing", [*TEXT, "--prompts", "{missing}"], "does not exist"),
    ("eval-text-prompts-malformed", [*TEXT, "--prompts", "{prompts}"], "prompts.jsonl"),
    ("eval-text-model-index-malformed", [*TEXT, "--model", "{bad_model}"], "model_index.json"),
    ("eval-text-out-under-a-file", [*TEXT, "--out", "{file}/t.json"], "is not a folder"),
    # train, train-vae
    ("train-recipe-missing", ["train", "{missing}"], "does not exist"),
    ("train-manifest-not-parquet", [*TRAIN, "data.manifest={manifest}"], "parquet"),
    ("train-manifest-missing", [*TRAIN, "data.manifest={missing}"], "does not exist"),
    ("train-model-index-malformed", [*TRAIN, "model={bad_model}"], "model_index.json"),
    ("train-override-not-key-value", [*TRAIN, "nonsense"], "nonsense"),
    (
        "train-cache-dir-missing",
        [*TRAIN, "data.manifest={good_manifest}", "data.cache_dir={missing_dir}"],
        "data.cache_dir",
    ),
    ("train-misplaced-key", [*TRAIN, "optim.lr=1e-3"], "stages.N.lr"),
    ("train-vae-recipe-missing", ["train-vae", "{missing}"], "does not exist"),
    (
        "train-vae-architecture-on-saved-weights",
        [*TRAIN_VAE, "model={vae}", "architecture.base_dim=8"],
        "architecture",
    ),
    ("train-vae-device-nonsense", [*TRAIN_VAE, "device=nonsense"], "nonsense"),
    ("train-vae-model-index-malformed", [*TRAIN_VAE, "model={bad_model}"], "model_index.json"),
    # cache
    ("cache-shard-size-0", [*CACHE, "--shard-size", "0"], "--shard-size"),
    ("cache-batch-size-0", [*CACHE, "--batch-size", "0"], "--batch-size"),
    ("cache-workers-negative", [*CACHE, "--workers", "-1"], "--workers"),
    ("cache-resolution-0", [*CACHE, "--resolution", "0"], "--resolution"),
    ("cache-resolution-negative", [*CACHE, "--resolution", "-64"], "--resolution"),
    ("cache-device-cuda", [*CACHE, "--device", "cuda"], "--device", NO_CUDA),
    ("cache-device-nonsense", [*CACHE, "--device", "nonsense"], "--device"),
    ("cache-dtype-nonsense", [*CACHE, "--dtype", "nonsense"], "--dtype"),
    ("cache-manifest-not-parquet", CACHE, "parquet"),
    (
        "cache-manifest-missing",
        ["cache", "{missing}", "-m", "tiny", "-o", "{out}", "--resolution", "64"],
        "does not exist",
    ),
    ("cache-out-is-a-file", [*CACHE, "-o", "{file}"], "is not a folder"),
    (
        "cache-recipe-missing",
        ["cache", "{manifest}", "-m", "tiny", "-o", "{out}", "--recipe", "{missing}"],
        "does not exist",
    ),
    # synth
    ("synth-n-0", [*SYNTH, "--n", "0"], "--n"),
    ("synth-shard-size-0", [*SYNTH, "--shard-size", "0"], "--shard-size"),
    ("synth-workers-negative", [*SYNTH, "--workers", "-1"], "--workers"),
    ("synth-kind-unknown", [*SYNTH, "--kind", "nosuch"], "--kind"),
    ("synth-tiers-not-numbers", [*SYNTH, "--tiers", "abc"], "--tiers"),
    ("synth-tiers-zero", [*SYNTH, "--tiers", "0"], "--tiers"),
    ("synth-langs-unknown", [*SYNTH, "--langs", "xx"], "--langs"),
    ("synth-out-is-a-file", [*SYNTH, "--out", "{file}"], "is not a folder"),
    # curate
    ("curate-batch-size-0", [*CURATE, "--batch-size", "0"], "--batch-size"),
    ("curate-shard-size-0", [*CURATE, "--shard-size", "0"], "--shard-size"),
    ("curate-workers-negative", [*CURATE, "--workers", "-1"], "--workers"),
    ("curate-max-pixels-0", [*CURATE, "--max-pixels", "0"], "--max-pixels"),
    ("curate-format-unknown", [*CURATE, "--format", "xml"], "--format"),
    ("curate-filters-unknown", [*CURATE, "--filters", "nosuch"], "nosuch"),
    ("curate-stage-unknown", [*CURATE, "--stage", "nosuch"], "nosuch"),
    (
        "curate-source-missing",
        ["curate", "{missing_dir}", "--out", "{out}", "--workers", "0"],
        "does not exist",
    ),
    ("curate-out-is-a-file", [*CURATE, "--out", "{file}"], "is not a folder"),
    (
        "curate-rethreshold-missing",
        ["curate", "--rethreshold", "{missing}", "--out", "{out}"],
        "--rethreshold",
    ),
    # enhance, enhancer
    ("enhance-prompt-empty", ["enhance", " ", "--enhancer", "{missing_dir}"], "the prompt is empty"),
    ("enhance-image-missing", [*ENHANCE, "--image", "{missing}"], "no such file"),
    ("enhance-enhancer-missing", ENHANCE, "no such folder"),
    ("enhance-canvas-side-0", [*ENHANCE, "--canvas-side", "0"], "--canvas-side"),
    ("enhance-timeout-0", [*ENHANCE, "--timeout", "0"], "--timeout"),
    ("enhancer-data-manifest-missing", [*PE_DATA[:2], "{missing}", *PE_DATA[3:]], "does not exist"),
    ("enhancer-data-manifest-not-parquet", [*PE_DATA[:2], "{manifest}", *PE_DATA[3:]], "parquet"),
    ("enhancer-data-variants-0", [*PE_DATA, "--variants", "0"], "--variants"),
    ("enhancer-data-eval-share-1", [*PE_DATA, "--eval-share", "1"], "--eval-share"),
    ("enhancer-data-limit-0", [*PE_DATA, "--limit", "0"], "--limit"),
    ("enhancer-grpo-recipe-missing", ["enhancer", "grpo", "{missing}"], "does not exist"),
    ("enhancer-grpo-override-not-key-value", [*PE_GRPO, "nonsense"], "nonsense"),
    ("enhancer-grpo-base-missing", [*PE_GRPO, "base={missing_dir}"], "base"),
    ("enhancer-grpo-data-missing", [*PE_GRPO, "base={vae}", "data={missing}"], "no such file"),
    ("enhancer-sft-recipe-missing", ["enhancer", "sft", "{missing}"], "does not exist"),
    ("enhancer-sft-override-not-key-value", [*PE_SFT, "nonsense"], "nonsense"),
    ("enhancer-sft-base-not-a-causal-lm", [*PE_SFT, "base={bad_model}"], "not a causal-LM folder"),
    ("enhancer-sft-data-missing", [*PE_SFT, "data={missing}"], "no such file"),
    ("enhancer-sft-lora-rank-0", [*PE_SFT, "lora.rank=0"], "lora.rank"),
    ("enhancer-sft-eval-data-missing", [*PE_SFT, "data={prompts}", "eval_data={missing}"], "no such file"),
    ("enhancer-sft-key-misspelt", [*PE_SFT, "train.max_step=3"], "did you mean train.max_steps?"),
    ("enhancer-sft-batch-size-0", [*PE_SFT, "train.batch_size=0"], "train.batch_size"),
    ("eval-enhancer-nothing-to-score", [*PE_EVAL, "--no-raw"], "nothing to score"),
    ("eval-enhancer-label-missing", [*PE_EVAL, "--enhancer", "{missing_dir}"], "LABEL=SPEC"),
    ("eval-enhancer-label-raw", [*PE_EVAL, "--enhancer", "raw=x"], "raw"),
    ("eval-enhancer-steps-0", [*PE_EVAL, "--steps", "0"], "--steps"),
    ("eval-enhancer-prompts-missing", [*PE_EVAL, "--prompts", "{missing}"], "does not exist"),
    # serve, arena
    ("serve-model-missing", ["serve", "--model", "a={missing_dir}"], "does not exist"),
    ("serve-model-no-path", ["serve", "--model", "a="], "NAME=PATH"),
    ("serve-model-name-twice", ["serve", "--model", "a=tiny", "--model", "a=tiny"], "twice"),
    ("serve-model-is-a-file", ["serve", "--model", "a={file}"], "is not a folder"),
    ("serve-port-0", ["serve", "--model", "tiny", "--port", "0"], "--port"),
    ("serve-max-queue-0", ["serve", "--model", "tiny", "--max-queue", "0"], "--max-queue"),
    ("serve-max-batch-0", ["serve", "--model", "tiny", "--max-batch", "0"], "--max-batch"),
    ("serve-text-bucket-0", ["serve", "--model", "tiny", "--text-bucket", "0"], "--text-bucket"),
    ("serve-device-nonsense", ["serve", "--model", "tiny", "--device", "nonsense"], "--device"),
    ("serve-key-file-missing", ["serve", "--model", "tiny", "--api-key-file", "{missing}"], "--api-key-file"),
    ("serve-enhancer-missing", ["serve", "--model", "tiny", "--enhancer", "{missing_dir}"], "no such folder"),
    (
        "serve-enhancer-url-no-model",
        ["serve", "--model", "tiny", "--enhancer", "http://127.0.0.1:9/v1"],
        "model",
    ),
    ("serve-db-nonsense", ["serve", "--model", "tiny", "--db", "nonsense"], "--db"),
    ("arena-serve-port-0", ["arena", "serve", "--port", "0"], "--port"),
    ("arena-serve-port-too-big", ["arena", "serve", "--port", "70000"], "--port"),
    ("arena-serve-daily-cap-0", ["arena", "serve", "--daily-cap", "0"], "--daily-cap"),
    ("arena-serve-votes-per-minute-0", ["arena", "serve", "--votes-per-minute", "0"], "--votes-per-minute"),
    ("arena-serve-db-nonsense", ["arena", "serve", "--db", "nonsense"], "--db"),
    ("arena-import-folder-missing", ["arena", "import", "{missing_dir}", "--model", "m"], "does not exist"),
    ("arena-import-folder-is-a-file", ["arena", "import", "{file}", "--model", "m"], "is not a folder"),
    (
        "arena-import-board-unknown",
        ["arena", "import", "{images}", "--model", "m", "--board", "x"],
        "--board",
    ),
    ("arena-export-out-is-a-folder", ["arena", "export", "--out", "{images}"], "is a folder"),
    (
        "arena-export-db-missing-file",
        ["arena", "export", "--out", "{out}/v.jsonl", "--db", "sqlite:///{missing_dir}/arena.db"],
        "no such database file",
    ),
    ("arena-export-out-under-a-file", ["arena", "export", "--out", "{file}/v.jsonl"], "is not a folder"),
    ("arena-ratings-votes-missing", [*RATINGS[:2], "{missing}", *RATINGS[3:]], "missing.png"),
    ("arena-ratings-votes-malformed", RATINGS, "votes.jsonl"),
    ("arena-ratings-bootstrap-negative", [*RATINGS, "--bootstrap", "-1"], "--bootstrap"),
    ("arena-ratings-anchor-malformed", [*RATINGS, "--anchor", "nonsense"], "--anchor"),
    ("arena-ratings-out-is-a-folder", [*RATINGS[:3], "--out", "{images}"], "is a folder"),
    ("arena-ratings-plot-jpg", [*RATINGS, "--plot", "{work}/p.jpg"], "--plot"),
    # the app itself
    ("unknown-command", ["nosuch"], "nosuch"),
    ("unknown-option", [*GEN, "--nosuch"], "--nosuch"),
    ("missing-argument", ["generate"], "prompt"),
]


def _params():
    for name, args, expected, *marks in CASES:
        yield pytest.param(args, expected, id=name, marks=marks)


@pytest.mark.parametrize(("args", "expected"), list(_params()))
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(args, expected, files, cli):
    args = [arg.format(**files) for arg in args]
    before = _tree(files["work"].parent)
    code, captured = cli(args)
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    assert expected in lines[0], lines[0]
    assert _tree(files["work"].parent) == before


def test_every_command_is_in_the_table():
    """A new command or subcommand must come with bad-input cases here."""
    import typer.main

    group = typer.main.get_command(cli_module.app)
    names = set()
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)
        names |= {f"{name}-{sub}" for sub in subcommands} if subcommands else {name}
    ids = [case[0] for case in CASES]
    assert not [name for name in names if not any(i.startswith(name + "-") for i in ids)]


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, cli):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("qwen_image2.data.synthetic.shapes.write_shapes_dataset", interrupted)
    code, captured = cli(["synth", "--kind", "shapes", "--out", "unused", "--n", "1"])
    assert code == 130
    assert captured.err.strip() == "error: interrupted"
