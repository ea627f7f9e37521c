import pytest

from qwen_image2.cli import main


@pytest.fixture
def cli(capsys):
    """Run the real entry point in this process: `cli(args)` -> (exit code, captured output)."""

    def run(args: list[str]):
        try:
            main(args)
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        return code, capsys.readouterr()

    return run
