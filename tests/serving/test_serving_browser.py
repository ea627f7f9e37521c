"""The serve page end to end in headless Chromium (Debian's, driven by Playwright): generate with step
previews, edit two dropped images, vote, and find the vote in the store (SQLite and PostgreSQL).

The server is the real app under uvicorn (`live_server`) with the bundled demo model; the browser is
/usr/bin/chromium, never a Playwright-downloaded one. Screenshots are kept in the test's tmp folder.
"""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from qwen_image2.serving.settings import Limits
from qwen_image2.serving.storage import Base, Feedback, build_engine
from web_helpers import chromium_context, empty_store

WAIT_MS = 60_000  # one demo image takes about a second; the first one also warms the model up
GENERATE_PROMPT = 'A poster that reads "HELLO" in black bold letters on a flat white background.'
EDIT_PROMPT = "Put the blue square from image 1 into the corner of the red poster in image 2."
COMMENT = "The blue square is missing."
KEY = "page-test-key"

# Every status line the page shows, recorded as it changes (a preview's line lasts a fraction of a second),
# and the parts of every multipart form it sends (Chromium tells Playwright nothing of a body with files).
RECORD_PAGE = """
window.__statuses = [];
window.__forms = [];
const pageFetch = window.fetch;
window.fetch = (url, init) => {
  if (init && init.body instanceof FormData) {
    window.__forms.push([...init.body.entries()].map(([name, value]) => [name, value.name ?? value]));
  }
  return pageFetch(url, init);
};
document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("status");
  new MutationObserver(() => window.__statuses.push(status.textContent))
    .observe(status, {childList: true, characterData: true, subtree: true});
});
"""


def png_bytes(color: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """An empty serve store: a fresh SQLite file, or the CI PostgreSQL database with its tables recreated."""
    return empty_store(request.param, tmp_path / "serve.db", build_engine, Base.metadata)


@pytest.fixture
def page():
    """A Chromium page; fails the test if the page's script threw."""
    with chromium_context() as context:
        context.add_init_script(RECORD_PAGE)
        tab = context.new_page()
        tab.set_default_timeout(WAIT_MS)
        script_errors: list[str] = []
        tab.on("pageerror", lambda error: script_errors.append(str(error)))
        yield tab
    assert not script_errors, script_errors


def wait_until_done(page) -> None:
    """Until the request in flight has ended (the submit button is back) with a result shown."""
    page.wait_for_function(
        "!document.getElementById('submit').disabled && !document.getElementById('result').hidden"
        " && document.getElementById('result-image').complete"
    )


def result_size(page) -> tuple[int, int]:
    return tuple(page.eval_on_selector("#result-image", "i => [i.naturalWidth, i.naturalHeight]"))


def drop_files(page, selector: str, files: list[tuple[str, bytes]]) -> None:
    """Drag and drop as the browser does it: a DataTransfer holding File objects, dropped on `selector`."""
    transfer = page.evaluate_handle(
        """files => {
          const transfer = new DataTransfer();
          for (const [name, b64] of files) {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            transfer.items.add(new File([bytes], name, {type: "image/png"}));
          }
          return transfer;
        }""",
        [[name, base64.b64encode(data).decode()] for name, data in files],
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def thumb_names(page) -> list[str]:
    return page.eval_on_selector_all("[data-testid=thumb]", "items => items.map(i => i.dataset.name)")


def test_generate_then_edit_two_dropped_images_then_vote_down(live_server, db_url, page, tmp_path):
    from playwright.sync_api import expect

    url = live_server(db_url=db_url)
    page.goto(url)
    page.wait_for_function("document.querySelectorAll('#model option').length === 2")
    expect(page.locator("#history-empty")).to_be_visible()

    # A refusal shows the server's own message, and nothing is made.
    page.fill("#prompt", GENERATE_PROMPT)
    page.select_option("#model", "demo")
    page.fill("#steps", "999")
    page.click("#submit")
    expect(page.locator("#error")).to_contain_text("num_inference_steps")

    # Generate at the model's own size, seeing the step previews on the way.
    page.fill("#steps", "")
    assert page.input_value("#size") == "auto"
    page.click("#submit")
    expect(page.locator("#error")).to_be_hidden()
    wait_until_done(page)
    assert page.get_attribute("#output", "data-partials") == "3"  # 20 steps: previews after 5, 10, 15
    statuses = page.evaluate("window.__statuses")
    assert "step preview 1 of 3" in statuses and "step preview 3 of 3" in statuses
    assert result_size(page) == (128, 128)  # the demo model's native side
    assert page.get_attribute("#result-download", "href").startswith("/v1/images/")
    page.wait_for_function("document.querySelectorAll('[data-testid=history-item]').length === 1")
    page.screenshot(path=str(tmp_path / "generated.png"), full_page=True)

    # Edit: two images dropped, a third chosen with the picker and removed, then the two swapped.
    page.click("#mode-edit")
    expect(page.locator("#drop-zone")).to_be_visible()
    drop_files(
        page,
        "#drop-zone",
        [("red.png", png_bytes((200, 30, 30), (96, 128))), ("blue.png", png_bytes((30, 30, 200), (128, 96)))],
    )
    assert thumb_names(page) == ["red.png", "blue.png"]
    page.set_input_files(
        "#file-input",
        files=[{"name": "green.png", "mimeType": "image/png", "buffer": png_bytes((30, 200, 30), (64, 64))}],
    )
    assert thumb_names(page) == ["red.png", "blue.png", "green.png"]
    page.locator("[data-testid=thumb]").nth(2).locator("[data-testid=thumb-remove]").click()
    page.locator("[data-testid=thumb]").first.locator("[data-testid=thumb-right]").click()
    assert thumb_names(page) == ["blue.png", "red.png"]

    page.fill("#prompt", EDIT_PROMPT)
    page.click("#submit")
    wait_until_done(page)
    (form,) = page.evaluate("window.__forms")
    images = [value for name, value in form if name == "image[]"]
    assert images == ["blue.png", "red.png"]  # in the thumbnails' order
    assert ["stream", "true"] in form and ["partial_images", "3"] in form
    assert "image" not in dict(form) and "num_inference_steps" not in dict(
        form
    )  # empty: the server's default
    assert page.get_attribute("#output", "data-partials") == "3"
    # "auto" for an edit is the last image's aspect at the model's side: red's 96x128 -> 96x160.
    assert result_size(page) == (96, 160)

    # The gallery, newest first, now holds both; vote the edit down with a comment.
    page.wait_for_function("document.querySelectorAll('[data-testid=history-item]').length === 2")
    page.wait_for_function(
        "[...document.querySelectorAll('#history img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    card = page.locator("[data-testid=history-item]").first
    assert card.get_attribute("data-kind") == "edit"
    expect(card.locator(".prompt")).to_have_text(EDIT_PROMPT)
    expect(card.locator(".meta")).to_contain_text("demo")
    image_id = card.get_attribute("data-image-id")
    card.locator("[data-testid=comment]").fill(COMMENT)
    card.locator("[data-testid=vote-down]").click()
    expect(card.locator("[data-testid=vote-down]")).to_have_class(re.compile(r"\bchosen\b"))
    expect(card.locator("[data-testid=vote-down]")).to_have_attribute("aria-pressed", "true")
    expect(card.locator("[data-testid=vote-up]")).not_to_have_class(re.compile(r"\bchosen\b"))
    expect(card.locator("[data-testid=vote-note]")).to_have_text("Thanks, saved.")
    page.screenshot(path=str(tmp_path / "voted.png"), full_page=True)

    engine = build_engine(db_url)
    try:
        with Session(engine) as session:
            votes = session.scalars(select(Feedback)).all()
            assert [(v.image_id, v.vote, v.comment) for v in votes] == [(image_id, -1, COMMENT)]
            generation = votes[0].image.generation
            assert (generation.kind, generation.model, generation.prompt) == ("edit", "demo", EDIT_PROMPT)
            assert generation.settings["size"] == "96x160"
    finally:
        engine.dispose()


def test_a_server_with_keys_asks_for_one_then_sends_it_and_shows_a_size_refusal(live_server, page, tmp_path):
    from playwright.sync_api import expect

    url = live_server(api_keys=frozenset({KEY}), limits=Limits(max_pixels=128 * 128))
    authorizations = []
    page.on("request", lambda r: "/v1/" in r.url and authorizations.append(r.headers.get("authorization")))
    page.goto(url)
    expect(page.locator("#key-panel")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("API key")

    page.fill("#api-key", KEY)
    page.click("#save-key")
    page.wait_for_function("document.querySelectorAll('#model option').length === 2")
    expect(page.locator("#key-panel")).to_be_hidden()
    expect(page.locator("#error")).to_be_hidden()

    # A preset over this server's pixel limit: its 400 is shown, the key went with the request.
    page.fill("#prompt", "a red circle")
    page.select_option("#size", "1344x768")
    page.click("#submit")
    expect(page.locator("#error")).to_contain_text("at most 16,384 pixels")
    expect(page.locator("#output")).to_be_hidden()  # no empty picture frame after a refusal
    page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)

    # The key is remembered: a reload loads the models without asking.
    page.reload()
    page.wait_for_function("document.querySelectorAll('#model option').length === 2")
    expect(page.locator("#key-panel")).to_be_hidden()
    assert authorizations[:2] == [None, None]  # models and history, before the key was known
    assert set(authorizations[2:]) == {f"Bearer {KEY}"}
    assert len(authorizations) >= 7  # models + history twice over, and the generation
