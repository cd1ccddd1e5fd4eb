"""The Images page's upload in Chromium: masks paired by file stem, a lost request sent again, nothing lost."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_upload_helpers(page, live_server):
    page.goto(f"{live_server.url}/login/")
    got = page.evaluate("""async () => {
        const U = await import("/static/frontend/lead/upload.js");
        return {
            stems: ["street_01.jpg", "a/b\\\\c.d.png", ".hidden", "noext"].map(U.fileStem),
            sizes: U.batches([...Array(17).keys()], 8).map((b) => b.length),
            retry: [0, 408, 429, 500, 503, 400, 403, 413].map(U.shouldRetry),
        };
    }""")
    assert got == {"stems": ["street_01", "c.d", ".hidden", "noext"], "sizes": [8, 8, 1],
                   "retry": [True, True, True, True, True, False, False, False]}


def test_a_lost_request_is_sent_again_and_masks_find_their_images(page, live_server, login, project):
    rng = np.random.default_rng(0)
    files = [{"name": f"frame_{i}.png", "mimeType": "image/png",
              "buffer": png_bytes(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))} for i in range(3)]
    mask = np.zeros((30, 40), np.uint8)
    mask[15:] = 1
    masks = [{"name": "frame_1.png", "mimeType": "image/png", "buffer": png_bytes(mask)},
             {"name": "stray.png", "mimeType": "image/png", "buffer": png_bytes(mask)}]
    sent: list[str] = []

    def first_one_lost(route):
        sent.append(route.request.url)
        route.abort() if len(sent) == 1 else route.continue_()

    page.route("**/uploads/", first_one_lost)
    login(page, "lead", "pw-lead")
    page.goto(f"{live_server.url}/projects/{project.pk}/images/")
    page.wait_for_function("() => window.uploader")
    page.set_input_files("#upload-masks", masks)
    page.set_input_files("#upload-images", files)
    assert "+ mask frame_1.png" in page.inner_text("#upload-files li[data-name='frame_1.png']")
    assert "no image named stray.* chosen" in page.inner_text("#upload-files li[data-name='stray.png']")
    page.click("#upload-start")
    page.wait_for_selector("[data-upload][data-state=done]", timeout=30_000)
    assert len(sent) == 2  # the lost request, then the same batch again
    assert page.locator("#upload-files li[data-state=imported]").count() == 3
    images = {image.original_name: image for image in project.images.all()}
    assert sorted(images) == ["frame_0.png", "frame_1.png", "frame_2.png"]
    assert images["frame_1.png"].gt_mask and not images["frame_0.png"].gt_mask
