"""`--safety`: outputs go through NudeNet's detector; a flagged image is a 422 and nothing is stored."""

from __future__ import annotations

import httpx
import numpy as np
from sqlalchemy import func, select

from qwen_image2.serving.storage import Generation, StoredImage


def count_rows(app) -> tuple[int, int]:
    with app.state.sessionmaker() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Generation, StoredImage))


def test_the_real_detector_screens_every_output_and_passes_a_poster(live_server):
    url = live_server(safety=True)
    app = live_server.app
    scores = []
    screen = app.state.safety.score
    app.state.safety.score = lambda images: scores.append(screen(images)) or scores[-1]
    response = httpx.post(
        f"{url}/v1/images/generations",
        json={"model": "demo", "prompt": "a poster", "size": "128x128", "n": 2},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert len(scores) == 1 and len(scores[0]) == 2 and (np.asarray(scores[0]) < 0.5).all()
    assert count_rows(app) == (1, 2)


class Flags:
    """A detector that flags everything (what NudeNet says of an unsafe image), to check the refusal path."""

    def score(self, images):
        return np.ones(len(images))


def test_a_flagged_image_is_refused_with_422_and_nothing_is_stored(live_server):
    url = live_server(safety=True)
    app = live_server.app
    app.state.safety = Flags()
    body = {"model": "tiny", "prompt": "x", "size": "32x32", "num_inference_steps": 1}
    response = httpx.post(f"{url}/v1/images/generations", json=body, timeout=60)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "content_policy_violation"
    stream = httpx.post(f"{url}/v1/images/generations", json={**body, "stream": True}, timeout=60)
    assert "content_policy_violation" in stream.text and "completed" not in stream.text
    assert count_rows(app) == (0, 0)
