"""`make test` ends with what it skipped, grouped by reason."""

from pathlib import Path

pytest_plugins = ["pytester"]


def test_skipped_tests_are_listed_by_reason_with_counts(pytester):
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_needs_a_server(n):
            pytest.skip("PostgreSQL not available")

        @pytest.mark.skipif(True, reason="minutes on CPU; set SLOW=1")
        def test_slow():
            pass

        def test_runs():
            pass
        """
    )
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=4)
    result.stdout.fnmatch_lines(
        ["*skipped, by reason*", "   3  PostgreSQL not available", "   1  minutes on CPU; set SLOW=1"]
    )
