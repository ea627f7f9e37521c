"""End to end in headless Chromium (Debian's, driven by Playwright): see two images, vote, see the board move.

The server is the real app under uvicorn on a loopback port; the browser is /usr/bin/chromium, never a
Playwright-downloaded one. The screenshot is kept in the test's tmp folder for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from arena_helpers import ADMIN_TOKEN, MODELS, import_all

from qwen_image2.evaluation.arena.app import build_app
from qwen_image2.evaluation.arena.settings import ArenaSettings
from web_helpers import chromium_context, served


@pytest.fixture
def live_arena(tmp_path: Path, set_dirs):
    """The arena served by uvicorn in a background thread; yields its base URL."""
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    import_all(url, set_dirs)
    app = build_app(ArenaSettings(db_url=url, admin_token=ADMIN_TOKEN, leaderboard_bootstrap=20))
    with served(app) as base:
        yield base
    app.state.engine.dispose()


@pytest.fixture
def page():
    with chromium_context() as context:
        yield context.new_page()


def loaded_images(page, selector: str) -> int:
    """How many images matching `selector` actually decoded in the browser (not just an <img> tag)."""
    return page.eval_on_selector_all(
        selector, "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length"
    )


def test_a_voter_sees_two_images_votes_and_sees_the_leaderboard_change(live_arena, page, tmp_path):
    page.goto(f"{live_arena}/leaderboard?board=t2i")
    assert page.locator("#no-votes").is_visible()

    page.goto(f"{live_arena}/?board=t2i")
    page.wait_for_function("document.querySelectorAll('.candidate img').length === 2")
    page.wait_for_function("[...document.querySelectorAll('.candidate img')].every(i => i.complete)")
    assert loaded_images(page, ".candidate img") == 2
    assert page.locator("#model-left").inner_text() == "model hidden"
    assert not page.locator("#after").is_visible()  # no "thanks" or "next" before the vote
    page.screenshot(path=str(tmp_path / "arena.png"), full_page=True)

    page.click("button[data-choice=left]")
    page.wait_for_selector("#after:not([hidden])")
    left, right = page.locator("#model-left").inner_text(), page.locator("#model-right").inner_text()
    assert {left, right} <= set(MODELS) and left != right
    page.screenshot(path=str(tmp_path / "arena-voted.png"), full_page=True)

    page.goto(f"{live_arena}/leaderboard?board=t2i")
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 2
    assert rows.first.locator("td.name").inner_text() == left  # the winner is now on top
    assert [int(v) for v in page.locator("#leaderboard td.votes-count").all_inner_texts()] == [1, 1]
    page.wait_for_function("document.querySelector('img.plot').complete")
    assert loaded_images(page, "img.plot") == 1
    page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)


def test_the_edit_board_shows_the_source_images_above_the_candidates(live_arena, page, tmp_path):
    page.goto(f"{live_arena}/?board=edit")
    page.wait_for_function("[...document.querySelectorAll('img')].every(i => i.complete)")
    assert loaded_images(page, ".sources img") >= 1
    assert loaded_images(page, ".candidate img") == 2
    source_bottom = page.eval_on_selector(".sources", "e => e.getBoundingClientRect().bottom")
    candidates_top = page.eval_on_selector(".pair", "e => e.getBoundingClientRect().top")
    assert source_bottom <= candidates_top
    page.screenshot(path=str(tmp_path / "arena-edit.png"), full_page=True)
