"""A 12 MP image is imported, queried as tiles and labeled in Chromium; its exported mask is whole and exact."""
from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from annotator.models import Image, Query, Round
from annotator.services.exports import export_masks
from annotator.services.imports import image_import_bytes
from annotator.services.queries import image_queries_store
from annotator.services.superpixels import image_tiles
from tests.factories import make_annotation, make_round

pytestmark = pytest.mark.django_db(transaction=True)

W, H = 4000, 3000
ROAD, CAR, SKY, VOID = 0, 1, 2, 255
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "labeling_tile.png"


def pattern() -> np.ndarray:
    """Sky above a horizon, a road below, a dark 'car' box: something to see at both pyramid levels."""
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.empty((H, W, 3), np.uint8)
    rgb[..., 0] = (xx * 255 // W).astype(np.uint8)
    rgb[..., 1] = np.where(yy < H * 0.45, 190, 90).astype(np.uint8)
    rgb[..., 2] = np.where(yy < H * 0.45, 235, 80).astype(np.uint8)
    rgb[1200:1700, 900:1700] = (30, 30, 40)
    return rgb


def page_labels(page) -> np.ndarray:
    """The page's own label array, moved as base64 (3 MP as a JSON list of numbers would be slow)."""
    encoded = page.evaluate("""() => {
        const labels = window.labeler.doc.labels; let text = "";
        for (let i = 0; i < labels.length; i += 0x8000) text += String.fromCharCode.apply(null, labels.subarray(i, i + 0x8000));
        return btoa(text);
    }""")
    width, height = page.evaluate("[window.labeler.width, window.labeler.height]")
    return np.frombuffer(base64.b64decode(encoded), np.uint8).reshape(height, width)


def client_point(page, x: float, y: float) -> tuple[float, float]:
    p = page.evaluate("([x, y]) => window.labeler.view.toClient(x, y)", [x, y])
    return p["x"], p["y"]


def test_a_12_megapixel_image_is_labeled_as_a_tile_and_exported_whole(
    page, live_server, login, project, users, settings, tmp_path
):
    settings.MASKLOOP_TILE_PIXELS = 4_000_000
    buffer = io.BytesIO()
    PILImage.fromarray(pattern()).save(buffer, format="JPEG", quality=90)
    image = image_import_bytes(project=project, name="city_12mp.jpg", data=buffer.getvalue(), suffix=".jpg",
                               domain=Image.Domain.TARGET, split=Image.Split.POOL, num_classes=3,
                               max_pixels=settings.MASKLOOP_MAX_IMAGE_PIXELS)
    assert isinstance(image, Image) and (image.width, image.height) == (W, H)

    round_ = make_round(project, number=0, state=Round.State.LABELING)
    assert image_queries_store(round_=round_, images=[image])
    tiles = image_tiles(width=W, height=H)
    queries = {q.region_key: q for q in Query.objects.filter(image=image)}
    assert sorted(queries) == [f"image-t{t.index}" for t in tiles] and len(tiles) == 4
    # Someone labeled the lower-right tile before: its pixels must survive the save of another tile.
    previous = np.full((H, W), VOID, np.uint8)
    previous[2000:2600, 2500:3900] = ROAD
    done = queries["image-t3"]
    make_annotation(done, previous, author=users["lead"])
    done.status = Query.Status.SUBMITTED
    done.save(update_fields=["status"])

    login(page, "annotator", "pw-annotator")
    page.goto(f"{live_server.url}/projects/{project.pk}/queue/")
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-ready='1']", timeout=60000)
    detail = page.evaluate("window.labeler.detail")
    tile = tiles[detail["tile"]["index"]]
    assert detail["tile"]["box"] == list(tile.box) and (tile.width, tile.height) == (2000, 1500)
    assert page.evaluate("[window.labeler.width, window.labeler.height]") == [2000, 1500]
    page.wait_for_function("document.querySelector('#tile-context-image').naturalWidth > 0", timeout=30000)
    assert page.evaluate("[document.querySelector('#tile-context-image').naturalWidth, "
                         "document.querySelector('#tile-context-image').naturalHeight]") == [1024, 768]
    assert page.locator("#tile-context").is_visible()

    # Fill the whole (empty) tile with sky, then paint a car stroke over it.
    page.keyboard.press("3")
    page.keyboard.press("g")
    page.mouse.click(*client_point(page, 500, 400))
    assert (page_labels(page) == SKY).all()
    page.keyboard.press("2")
    page.keyboard.press("b")
    page.mouse.move(*client_point(page, 300, 1000))
    page.mouse.down()
    for x, y in [(800, 1100), (1400, 1200), (1900, 1300)]:
        page.mouse.move(*client_point(page, x, y), steps=8)
    page.mouse.up()
    painted = page_labels(page)
    assert (painted == CAR).sum() > 10_000 and set(np.unique(painted)) == {CAR, SKY}
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))

    page.keyboard.press("Control+Enter")
    # Submitted: the page moves on to the image's next tile.
    page.wait_for_url(lambda url: f"/label/{detail['id']}/" not in url, timeout=60000)
    query = Query.objects.get(pk=detail["id"])
    assert query.status == Query.Status.SUBMITTED

    expected = previous.copy()
    expected[tile.slices] = painted
    report = export_masks(project=project, dest=tmp_path / "masks.zip", include_images=False)
    assert report.images == 1
    with zipfile.ZipFile(tmp_path / "masks.zip") as bundle:
        entry = json.loads(bundle.read("manifest.json"))["images"][0]
        assert entry["annotation_version"] == 2
        exported = PILImage.open(io.BytesIO(bundle.read(entry["mask"])))
        assert exported.size == (W, H) and exported.mode == "L"
        assert (np.asarray(exported) == expected).all()
    assert not [m for m in page.console_messages if m.startswith("pageerror")]
