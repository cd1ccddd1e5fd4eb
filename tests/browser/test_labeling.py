"""An annotator labels in Chromium, and the server ends up with exactly the expected pixels.

Tests drive the real page with mouse and keyboard through Playwright and
assert on the mask arrays: the page's own (``window.labeler.doc``) and the PNG
the server stored.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from annotator.models import Query, Round
from tests.factories import make_annotation, make_image, make_query, make_round, make_suggestion

# Playwright's sync API runs an event loop in this thread; the ORM calls of the
# fixtures are still synchronous and safe here.

pytestmark = pytest.mark.django_db(transaction=True)

W, H = 120, 90
ROAD, CAR, SKY, VOID = 0, 1, 2, 255  # the project fixture's classes (hotkeys 1, 2, 3)


def gradient(width: int = W, height: int = H) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 120)], -1).astype(np.uint8)


def stored_mask(image) -> tuple[np.ndarray, object]:
    annotation = image.annotations.order_by("-version").first()
    with annotation.mask.open("rb") as handle:
        return np.asarray(PILImage.open(io.BytesIO(handle.read()))), annotation


def page_labels(page) -> np.ndarray:
    values = page.evaluate("Array.from(window.labeler.doc.labels)")
    return np.array(values, np.uint8).reshape(page.evaluate("window.labeler.height"), -1)


def page_pending(page) -> np.ndarray:
    values = page.evaluate("Array.from(window.labeler.doc.pending)")
    return np.array(values, np.uint8).reshape(page.evaluate("window.labeler.height"), -1)


def client_point(page, x: float, y: float) -> tuple[float, float]:
    p = page.evaluate("([x, y]) => window.labeler.view.toClient(x, y)", [x, y])
    return p["x"], p["y"]


def drag(page, points: list[tuple[float, float]]) -> None:
    page.mouse.move(*client_point(page, *points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*client_point(page, *point), steps=6)
    page.mouse.up()


def click(page, x: float, y: float) -> None:
    page.mouse.click(*client_point(page, x, y))


def open_next(page, live_server, project) -> None:
    """From the project's queue page, start labeling with the keyboard and wait for the page to load."""
    page.goto(f"{live_server.url}/projects/{project.pk}/queue/")
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-ready='1']", timeout=30000)


def wait_saved(page, text: str = "Saved as version") -> None:
    page.wait_for_function("(t) => document.querySelector('#save-status').textContent.includes(t)", arg=text,
                           timeout=30000)


def version_labels(page) -> tuple[str, str]:
    """(the panel's header line about the version, the footer's save status)."""
    return page.locator("#version-info").inner_text(), page.locator("#save-status").inner_text()


@pytest.fixture
def round_(project):
    return make_round(project, number=0, state=Round.State.LABELING)


@pytest.fixture
def whole_image_query(project, round_):
    """A whole-image query whose suggestion says road on the lower half and nothing above."""
    query = make_query(round_, make_image(project, size=(W, H), pixels=gradient()))
    suggestion = np.full((H, W), VOID, np.uint8)
    suggestion[H // 2:] = ROAD
    make_suggestion(query, suggestion, np.full((H, W), 0.8))
    return query


def test_annotator_paints_undoes_fills_switches_class_and_submits_exact_pixels(
    page, live_server, login, project, whole_image_query
):
    login(page, "annotator", "pw-annotator")
    open_next(page, live_server, project)

    # The suggestion is shown, hatched, but nothing is confirmed yet.
    assert (page_labels(page) == VOID).all()
    overlay = page.evaluate("""() => {
        const c = document.querySelector('#overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return {row: Array.from({length: 24}, (_, x) => d[(70 * c.width + x) * 4 + 3]), empty: d[(10 * c.width + 10) * 4 + 3]};
    }""")
    assert overlay["empty"] == 0  # nothing suggested up there
    assert min(overlay["row"]) > 0 and len(set(overlay["row"])) == 2  # suggested: stripes over a tint

    # Paint a car stroke, then undo it: back to exactly nothing.
    page.keyboard.press("2")
    page.keyboard.press("b")
    drag(page, [(10, 10), (60, 12), (90, 30)])
    painted = page_labels(page)
    assert (painted == CAR).sum() > 100 and set(np.unique(painted)) == {CAR, VOID}
    page.keyboard.press("Control+z")
    assert (page_labels(page) == VOID).all()
    page.keyboard.press("Control+Shift+z")
    assert (page_labels(page) == painted).all()
    page.keyboard.press("Control+z")

    # Switch class with its hotkey and flood-fill the empty upper half.
    page.keyboard.press("3")
    assert page.locator("#classes .class.active .name").inner_text() == "sky"
    page.keyboard.press("g")
    click(page, 60, 20)
    expected = np.full((H, W), VOID, np.uint8)
    expected[: H // 2] = SKY
    assert (page_labels(page) == expected).all()

    # Submit: the page asks about the suggestion nobody accepted; Enter accepts it.
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#dialog[open]")
    assert "suggested but not accepted" in page.locator("#dialog .message").inner_text()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/projects/{project.pk}/queue/**", timeout=15000)

    expected[H // 2:] = ROAD
    mask, annotation = stored_mask(whole_image_query.image)
    assert (mask == expected).all()
    assert annotation.is_submitted and annotation.author.username == "annotator"
    assert annotation.suggestion_dice == pytest.approx(2 * (W * H / 2) / (W * H / 2 + W * H))
    whole_image_query.refresh_from_db()
    assert whole_image_query.status == Query.Status.SUBMITTED
    assert not [m for m in page.console_messages if m.startswith("pageerror")]


def test_a_region_query_is_outlined_and_only_its_pixels_change(page, live_server, login, project, round_):
    image = make_image(project, size=(60, 40), pixels=gradient(60, 40))
    region = np.zeros((40, 60), bool)
    region[10:30, 20:40] = True
    query = make_query(round_, image, region=region)
    suggestion = np.full((40, 60), VOID, np.uint8)
    suggestion[:, :30] = ROAD  # covers the region's left half, and pixels outside it
    make_suggestion(query, suggestion, np.full((40, 60), 0.7))
    login(page, "annotator", "pw-annotator")
    open_next(page, live_server, project)

    alpha = page.evaluate("""() => {
        const c = document.querySelector('#region');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const at = (x, y) => Array.from(d.slice((y * c.width + x) * 4, (y * c.width + x) * 4 + 4));
        return {inside: at(25, 15), outline: at(19, 15), outside: at(2, 2)};
    }""")
    assert alpha["inside"][3] == 0  # the region is clear
    assert alpha["outline"][:3] == [255, 214, 0] and alpha["outline"][3] == 255  # outlined
    assert 0 < alpha["outside"][3] < 255  # the rest is dimmed

    page.keyboard.press("3")
    page.keyboard.press("u")  # fill the region's empty pixels with sky
    page.keyboard.press("Shift+A")  # accept the suggestion (inside the region only)
    page.keyboard.press("2")
    page.keyboard.press("b")
    drag(page, [(3, 3), (15, 35)])  # outside the region: changes nothing
    expected = np.full((40, 60), VOID, np.uint8)
    expected[10:30, 20:30] = ROAD
    expected[10:30, 30:40] = SKY
    assert (page_labels(page) == expected).all()

    page.keyboard.press("Control+Enter")  # everything required is labeled: no question asked
    page.wait_for_url(f"**/projects/{project.pk}/queue/**", timeout=15000)
    mask, annotation = stored_mask(image)
    assert (mask == expected).all()
    assert annotation.suggestion_dice == pytest.approx(2 * 200 / (200 + 400))


def test_work_survives_a_lost_connection_and_a_reload(page, live_server, login, project, whole_image_query):
    login(page, "annotator", "pw-annotator")
    open_next(page, live_server, project)
    page.keyboard.press("b")
    drag(page, [(20, 20), (80, 40)])
    page.keyboard.press("Control+s")
    wait_saved(page)
    _, first = stored_mask(whole_image_query.image)
    assert first.version == 1 and not first.is_submitted

    # The server becomes unreachable: saving fails, the work is kept in the browser.
    page.route("**/annotations/**", lambda route: route.abort())
    page.keyboard.press("3")
    drag(page, [(10, 70), (100, 80)])
    painted = page_labels(page)
    page.keyboard.press("Control+s")
    page.wait_for_function("document.querySelector('#save-status').dataset.state === 'error'", timeout=10000)
    page.wait_for_function(  # the local copy is written shortly after the last edit
        "async () => { const r = await window.labeler.saver.backup.get(); return !!r && r.revision === window.labeler.doc.revision; }",
        timeout=15000)

    # The tab is reloaded (the "leave page?" question answered yes); the network is back.
    page.unroute("**/annotations/**")
    page.on("dialog", lambda dialog: dialog.accept())
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    assert (page_labels(page) == painted).all()  # restored from this browser
    # Version 2 reaches the server: sent as the page was left (a keepalive request, often before the reloaded
    # page claims the query and reads it back), else by the reloaded page from this browser's copy.
    page.wait_for_function("window.labeler.saver.baseVersion === 2 && !window.labeler.saver.dirty", timeout=30000)
    mask, second = stored_mask(whole_image_query.image)
    assert (mask == painted).all() and second.parent_id == first.pk


def test_a_stale_save_merges_or_asks_instead_of_overwriting(page, live_server, login, project, users,
                                                            whole_image_query):
    login(page, "annotator", "pw-annotator")
    open_next(page, live_server, project)
    image = whole_image_query.image
    assert version_labels(page) == ("No saved version yet.", "Nothing saved yet")

    # The lead saves a version meanwhile, on other pixels: the page merges without asking.
    theirs = np.full((H, W), VOID, np.uint8)
    theirs[:10, :10] = SKY
    make_annotation(whole_image_query, theirs, author=users["lead"], submitted=False)
    page.keyboard.press("2")
    page.keyboard.press("b")
    drag(page, [(60, 60), (100, 80)])
    page.keyboard.press("Control+s")
    wait_saved(page, "Saved as version 2")
    assert version_labels(page) == ("Version 2 by you (draft).", "Saved as version 2")  # header and footer agree
    mask, merged = stored_mask(image)
    assert (mask[:10, :10] == SKY).all()
    assert (mask == page_labels(page)).all() and (mask == CAR).sum() > 100
    assert merged.parent.author == users["lead"]

    # Both change the same pixels: the page asks; "keep theirs" wins there.
    stroke = page_labels(page) == CAR
    make_annotation(whole_image_query, np.where(stroke, SKY, mask).astype(np.uint8), author=users["lead"],
                    submitted=False)
    page.keyboard.press("1")
    page.keyboard.press("g")
    click(page, 80, 70)  # my car stroke becomes road; the lead made it sky
    assert (page_labels(page)[stroke] == ROAD).all()
    page.keyboard.press("b")
    drag(page, [(10, 60), (30, 60)])  # and a road stroke nobody else touched
    elsewhere = (page_labels(page) == ROAD) & ~stroke
    page.keyboard.press("Control+s")
    page.wait_for_selector("#dialog[open]", timeout=10000)
    assert page.locator("#dialog h2").inner_text() == "lead saved this image"
    assert "lead saved version 3" in page.locator("#dialog .message").inner_text()
    page.click("#dialog button[value=theirs]")
    wait_saved(page, "Saved as version 4")
    assert version_labels(page) == ("Version 4 by you (draft).", "Saved as version 4")
    mask, _ = stored_mask(image)
    assert (mask[stroke] == SKY).all()  # their pixels won where we both changed
    assert elsewhere.sum() > 20 and (mask[elsewhere] == ROAD).all()  # my other change is kept
    assert (mask[:10, :10] == SKY).all()
    assert (mask == page_labels(page)).all()


def test_the_same_annotator_in_two_tabs_is_told_it_was_the_other_tab(page, live_server, login, project,
                                                                     whole_image_query):
    login(page, "annotator", "pw-annotator")
    open_next(page, live_server, project)
    other = page.context.new_page()  # same browser, same session: a second tab on the same query
    other.goto(page.url)
    other.wait_for_selector("body[data-ready='1']", timeout=30000)

    # Both tabs paint the same pixels; the second tab saves first.
    for tab, key in ((other, "3"), (page, "2")):
        tab.bring_to_front()
        tab.keyboard.press(key)
        tab.keyboard.press("b")
        drag(tab, [(20, 20), (80, 25)])
    other.keyboard.press("Control+s")
    other.wait_for_selector("#save-status:has-text('Saved as version 1')", timeout=30000)
    assert other.locator("#version-info").inner_text() == "Version 1 by you (draft)."

    page.bring_to_front()
    page.keyboard.press("Control+s")
    page.wait_for_selector("#dialog[open]", timeout=10000)
    assert page.locator("#dialog h2").inner_text() == "You saved this image in another tab"
    message = page.locator("#dialog .message").inner_text()
    assert "You saved version 1 in another tab or window" in message and "omeone" not in message
    page.click("#dialog button[value=mine]")
    wait_saved(page, "Saved as version 2")
    assert version_labels(page) == ("Version 2 by you (draft).", "Saved as version 2")
    mask, annotation = stored_mask(whole_image_query.image)
    assert annotation.version == 2 and (mask == page_labels(page)).all() and (mask == CAR).sum() > 100
    other.close()


def test_superpixel_click_and_polygon_paint_exact_pixels(page, live_server, login, project, whole_image_query):
    from matplotlib.path import Path

    from annotator.services.superpixels import image_superpixels

    login(page, "annotator", "pw-annotator")
    open_next(page, live_server, project)
    page.keyboard.press("2")
    page.keyboard.press("s")
    page.wait_for_function("window.labeler.superpixels !== null", timeout=30000)
    click(page, 30.5, 20.5)
    regions = image_superpixels(image=whole_image_query.image)
    assert (page_labels(page) == np.where(regions == regions[20, 30], CAR, VOID)).all()
    page.keyboard.press("Control+z")

    page.keyboard.press("l")
    for x, y in [(10, 50), (70, 45), (40, 85)]:
        click(page, x, y)
    vertices = page.evaluate("window.labeler.tools.polygon.points.map((p) => [p.x, p.y])")
    page.keyboard.press("Enter")
    yy, xx = np.mgrid[0:H, 0:W]
    inside = Path(vertices).contains_points(np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1)).reshape(H, W)
    assert inside.sum() > 500
    assert (page_labels(page) == np.where(inside, CAR, VOID)).all()


def test_skip_asks_for_a_reason(page, live_server, login, project, whole_image_query):
    login(page, "annotator", "pw-annotator")
    open_next(page, live_server, project)
    page.keyboard.press("k")
    page.wait_for_selector("#dialog[open]")
    page.keyboard.press("Enter")  # no reason yet: the dialog stays
    assert page.locator("#dialog").get_attribute("open") is not None
    page.keyboard.type("too dark to tell")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/projects/{project.pk}/queue/**", timeout=15000)
    whole_image_query.refresh_from_db()
    assert whole_image_query.status == Query.Status.SKIPPED
    assert whole_image_query.skip_reason == "too dark to tell"


def test_zoom_pan_fit_and_view_toggles(page, live_server, login, project, whole_image_query):
    login(page, "annotator", "pw-annotator")
    open_next(page, live_server, project)
    view = "({s: window.labeler.view.scale, x: window.labeler.view.tx, y: window.labeler.view.ty})"
    fitted = page.evaluate(view)
    # Wheel zoom keeps the image point under the cursor in place.
    cx, cy = client_point(page, 30, 20)
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"{view}.s > {fitted['s']}")
    after = page.evaluate("([x, y]) => window.labeler.view.toImage(x, y)", [cx, cy])
    assert after["x"] == pytest.approx(30, abs=0.05) and after["y"] == pytest.approx(20, abs=0.05)
    # Space + drag pans by the drag.
    before = page.evaluate(view)
    page.keyboard.down(" ")
    page.mouse.down()
    page.mouse.move(cx + 40, cy + 25, steps=4)
    page.mouse.up()
    page.keyboard.up(" ")
    moved = page.evaluate(view)
    assert (moved["x"] - before["x"], moved["y"] - before["y"]) == pytest.approx((40, 25), abs=0.5)
    assert (page_labels(page) == VOID).all()  # panning painted nothing
    page.keyboard.press("f")
    assert page.evaluate(view) == pytest.approx(fitted)
    # Brush size, overlay and confidence toggles.
    size = page.evaluate("window.labeler.brushRadius")
    page.keyboard.press("]")
    assert page.evaluate("window.labeler.brushRadius") > size
    page.keyboard.press("h")
    assert page.locator("#overlay").is_hidden()
    page.keyboard.press("c")
    page.wait_for_selector("#confidence:not([hidden])")
    assert page.evaluate("""() => {
        const c = document.querySelector('#confidence');
        return c.getContext('2d').getImageData(5, 5, 1, 1).data[3];
    }""") > 0  # 0.8 confidence: a light warm tint


def test_accept_under_the_cursor_eraser_and_lasso(page, live_server, login, project, round_):
    query = make_query(round_, make_image(project, size=(W, H), pixels=gradient()))
    suggestion = np.full((H, W), VOID, np.uint8)
    suggestion[45:, :60] = ROAD
    suggestion[45:, 60:] = SKY
    make_suggestion(query, suggestion, np.full((H, W), 0.8))
    login(page, "annotator", "pw-annotator")
    open_next(page, live_server, project)

    page.mouse.move(*client_point(page, 30, 70))
    page.keyboard.press("a")  # accept the suggested area under the cursor: the road, not the sky
    expected = np.full((H, W), VOID, np.uint8)
    expected[45:, :60] = ROAD
    assert (page_labels(page) == expected).all()

    page.keyboard.press("e")
    drag(page, [(70, 50), (110, 50)])  # the sky suggestion there was wrong: erase it
    page.keyboard.press("Shift+A")  # accept what is left of the suggestion
    labels = page_labels(page)
    assert (labels[50, 72:108] == VOID).all()  # erased pixels stay empty
    assert (labels[60:, 60:] == SKY).all() and (labels[45:, :60] == ROAD).all()

    page.keyboard.press("2")
    page.keyboard.press("l")
    drag(page, [(10, 5), (50, 5), (30, 35)])  # a freehand lasso fills when released
    lasso = page_labels(page)[:40]
    assert lasso[12, 30] == CAR and lasso[10, 100] == VOID and lasso[38, 5] == VOID
    assert set(np.unique(lasso)) == {CAR, VOID} and (lasso == CAR).sum() > 300


def test_an_erased_suggestion_stays_erased_after_a_reload(page, live_server, login, project, whole_image_query):
    login(page, "annotator", "pw-annotator")
    open_next(page, live_server, project)
    page.keyboard.press("1")
    drag(page, [(10, 10), (40, 10)])  # some confirmed road in the upper half, so there is a draft to keep
    page.keyboard.press("e")
    drag(page, [(20, 70), (100, 70)])  # the road suggestion there was wrong
    pending, labels = page_pending(page), page_labels(page)
    lower = pending[H // 2:]
    assert (lower == VOID).any() and (lower == ROAD).any()  # part of the suggestion erased, the rest waits
    page.keyboard.press("Control+s")
    wait_saved(page)
    page.wait_for_function("async () => !!(await window.labeler.dismissed.store.get())", timeout=10000)

    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    assert (page_labels(page) == labels).all()
    assert (page_pending(page) == pending).all()  # the erased stretch did not come back

    key = page.evaluate("`dismissed-${window.labeler.detail.id}-${window.labeler.detail.assignee}`")
    page.keyboard.press("Shift+A")  # accept what is left, submit: the erasure is forgotten with the query
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#dialog[open]")  # the erased stretch and the upper half stay empty
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/projects/{project.pk}/queue/**", timeout=15000)
    stored = page.evaluate("""(key) => new Promise((resolve) => {
        const open = indexedDB.open("maskloop-labeling", 1);
        open.onsuccess = () => {
            const request = open.result.transaction("drafts").objectStore("drafts").get(key);
            request.onsuccess = () => resolve(request.result === undefined ? null : request.result);
        };
    })""", key)
    assert stored is None


def test_hand_back_keeps_the_draft_and_frees_the_query(page, live_server, login, project, whole_image_query):
    login(page, "annotator", "pw-annotator")
    open_next(page, live_server, project)
    page.keyboard.press("2")
    page.keyboard.press("b")
    drag(page, [(10, 10), (60, 12)])
    painted = page_labels(page)
    page.click("[data-action=hand-back]")
    page.wait_for_url(f"**/projects/{project.pk}/queue/", timeout=30000)
    query = Query.objects.get(pk=whole_image_query.pk)
    assert (query.status, query.assignee, query.locked_until) == (Query.Status.PENDING, None, None)
    saved, annotation = stored_mask(whole_image_query.image)
    assert not annotation.is_submitted and (saved == painted).all()
