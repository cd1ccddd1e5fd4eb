"""The labeling page's panel and view: every control reachable at laptop sizes, the polygon preview
at high zoom, brightness / contrast / gamma (view only), and the version labels' pure sentences.

The pure modules (versions.js, sketch.js, display.js) are imported from the live server's static
files and checked directly; the page tests drive the real page and read pixels off the screen.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from annotator.models import Round
from annotator.services.projects import ClassSpec, membership_set, project_create
from tests.factories import make_image, make_query, make_round, make_suggestion

pytestmark = pytest.mark.django_db(transaction=True)

LABEL = "/static/frontend/label"
W, H = 120, 90


def gradient(width: int = W, height: int = H) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 120)], -1).astype(np.uint8)


@pytest.fixture
def js(page, live_server):
    """``js(body, arg)``: run an async function body with V (versions), S (sketch), D (display) in scope."""
    page.goto(f"{live_server.url}/login/")

    def run(body: str, arg=None):
        return page.evaluate(
            f"""async (arg) => {{
                const V = await import("{LABEL}/versions.js");
                const S = await import("{LABEL}/sketch.js");
                const D = await import("{LABEL}/display.js");
                {body}
            }}""",
            arg,
        )

    return run


def open_query(page, live_server, project) -> None:
    page.goto(f"{live_server.url}/projects/{project.pk}/queue/")
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-ready='1']", timeout=30000)


def client_point(page, x: float, y: float) -> tuple[float, float]:
    p = page.evaluate("([x, y]) => window.labeler.view.toClient(x, y)", [x, y])
    return p["x"], p["y"]


def screen(page, clip: dict | None = None) -> np.ndarray:
    """The page as it is on screen (RGB), or the ``clip`` of it."""
    return np.asarray(PILImage.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB")).astype(int)


# --- the pure modules -------------------------------------------------------------------------------


def test_every_version_sentence_is_written_from_the_one_record(js):
    got = js("""
        const none = V.versionOf(null);
        const opened = V.versionOf({version: 2, author: "lead", is_submitted: false});
        const mine = V.versionOf({version: 3, author: "annotator", is_submitted: false}, {mine: true});
        const otherTab = V.versionOf({version: 4, author: "annotator", is_submitted: true}, {mine: true});
        return {
            none: [V.describeVersion(none), V.describeSave({kind: "saved"}, none)],
            opened: [V.describeVersion(opened), V.describeSave({kind: "saved"}, opened)],
            mine: [V.describeVersion(mine), V.describeSave({kind: "saved"}, mine),
                   V.describeSave({kind: "dirty"}, mine)],
            merged: V.describeMerge({how: "merged", conflicts: 0}, opened),
            theirs: V.describeMerge({how: "theirs", conflicts: 1200}, opened),
            reloaded: V.describeMerge({how: "reload"}, otherTab),
            submitted: V.describeVersion(otherTab),
            someone: V.conflictQuestion({latest: opened, conflicts: 5, mineChanged: 80}),
            anonymous: V.conflictQuestion({latest: V.versionOf({version: 2, author: null}), conflicts: 5,
                                           mineChanged: 80}).title,
            sameUser: V.conflictQuestion({latest: otherTab, conflicts: 5, mineChanged: 80}),
        };
    """)
    assert got["none"] == ["No saved version yet.", "Nothing saved yet"]
    assert got["opened"] == ["Version 2 by lead (draft).", "Saved as version 2"]
    assert got["mine"] == ["Version 3 by you (draft).", "Saved as version 3", "Unsaved changes"]
    assert got["merged"] == "Merged with version 2 by lead (no overlapping edits)."
    assert got["theirs"] == f"Merged with version 2 by lead ({1200:,} overlapping pixels: kept theirs)."
    assert got["reloaded"] == "Reloaded version 4 from your other tab."
    assert got["submitted"] == "Version 4 by you (submitted)."
    assert got["someone"]["title"] == "lead saved this image"
    assert got["someone"]["message"].startswith("lead saved version 2 while you worked. 5 of the 80 pixels")
    assert got["anonymous"] == "Someone else saved this image"
    assert got["sameUser"]["title"] == "You saved this image in another tab"
    same_user = got["sameUser"]["message"]
    assert "Someone" not in same_user and "You saved version 4 in another tab" in same_user
    assert [b["value"] for b in got["sameUser"]["buttons"]] == ["mine", "theirs", "reload"]


def test_the_polygon_preview_is_laid_out_in_screen_pixels(js):
    got = js("""
        const view = {scale: 32, tx: -1000, ty: -640};
        const points = [{x: 40, y: 25}, {x: 45.5, y: 25}, {x: 45.5, y: 30.25}];
        return {
            clicking: S.sketchGeometry(points, {x: 42, y: 28}, view),
            dragging: S.sketchGeometry(points, {x: 42, y: 28}, view, {dragging: true}),
            nothing: S.sketchGeometry([], {x: 1, y: 1}, view),
        };
    """)
    assert got["clicking"]["edges"] == [[280, 160], [456, 160], [456, 328]]
    assert got["clicking"]["start"] == [280, 160]
    # The pointer's segment, then the closing one back to the first vertex.
    assert got["clicking"]["rubber"] == [[456, 328], [344, 256], [280, 160]]
    assert got["dragging"]["rubber"] == []  # a freehand lasso: the stroke itself is the preview
    assert got["nothing"] == {"edges": [], "rubber": [], "start": None}


def test_display_settings_filter_and_their_effect_on_one_value(js):
    got = js("""
        const gamma2 = {brightness: 1, contrast: 1, gamma: 2};
        const all = {brightness: 1.5, contrast: 0.8, gamma: 2};
        return {
            none: D.cssFilter(D.DISPLAY_DEFAULTS),
            gamma: D.cssFilter(gamma2),
            all: D.cssFilter(all),
            quarter: D.displayedValue(0.25, gamma2),
            chain: D.displayedValue(0.25, all),
            clipped: D.displayedValue(0.9, {brightness: 3, contrast: 1, gamma: 1}),
            cleaned: D.cleanDisplay({brightness: "9", contrast: null, gamma: -1}),
        };
    """)
    assert got["none"] == "none"
    assert got["gamma"] == "url(#display-gamma)"
    assert got["all"] == "url(#display-gamma) brightness(1.5) contrast(0.8)"
    assert got["quarter"] == pytest.approx(0.5)  # gamma 2 lifts the mid-tones: 0.25 ** (1 / 2)
    assert got["chain"] == pytest.approx((0.5 * 1.5 - 0.5) * 0.8 + 0.5)
    assert got["clipped"] == 1
    assert got["cleaned"] == {"brightness": 3, "contrast": 1, "gamma": 0.2}


# --- the page ---------------------------------------------------------------------------------------

CAMVID_CLASSES = ["sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian",
                  "bicyclist"]


@pytest.fixture
def make_labeling_project(users):
    """``make(classes)``: a project with those classes and one whole-image query with a suggestion, labeling."""

    def make(class_names: list[str]):
        from annotator.models import Membership
        from annotator.services.projects import default_color, default_hotkey

        project = project_create(
            name="Panel", created_by=users["lead"],
            classes=[ClassSpec(i, name, default_color(i), default_hotkey(i)) for i, name in enumerate(class_names)],
        )
        membership_set(project=project, user=users["annotator"], role=Membership.Role.ANNOTATOR)
        round_ = make_round(project, number=0, state=Round.State.LABELING)
        query = make_query(round_, make_image(project, size=(W, H), pixels=gradient()))
        suggestion = np.full((H, W), 255, np.uint8)
        suggestion[H // 2:] = 0
        make_suggestion(query, suggestion, np.full((H, W), 0.8))
        return project

    return make


REACHABLE = """(el) => {
    // Scrolled into view the way a user would (the wheel over the panel), then: is the control the
    // topmost thing at its centre (not under the finish bar), inside the window, and wide enough to use?
    el.scrollIntoView({block: "nearest"});
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    const top = document.elementFromPoint(x, y);
    return {
        onTop: !!top && (top === el || el.contains(top) || top.contains(el) && top.tagName === "LABEL"),
        inWindow: r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth,
        width: r.width, height: r.height,
    };
}"""


@pytest.mark.parametrize("size", [(1280, 720), (1400, 900)], ids=["1280x720", "1400x900"])
@pytest.mark.parametrize("classes", [CAMVID_CLASSES[:6], CAMVID_CLASSES], ids=["6-classes", "11-classes"])
def test_every_class_and_view_control_is_reachable_and_clickable(page, live_server, login, make_labeling_project,
                                                                   size, classes):
    project = make_labeling_project(classes)
    page.set_viewport_size({"width": size[0], "height": size[1]})
    login(page, "annotator", "pw-annotator")
    open_query(page, live_server, project)

    # The panel ends at the window's bottom edge and the finish bar is in view without scrolling.
    assert page.evaluate("document.querySelector('.panel').getBoundingClientRect().bottom") <= size[1] + 0.5
    for selector in ["[data-action=submit]", "[data-action=save]", "[data-action=skip]", "[data-action=hand-back]"]:
        state = page.locator(selector).evaluate(REACHABLE)
        assert state["onTop"] and state["inWindow"], (selector, state)

    # Every class: scrolled to, on top (not under the finish bar), and a click selects it.
    buttons = page.locator("#classes .class")
    assert buttons.count() == len(classes)
    for i, name in enumerate(classes):
        button = buttons.nth(i)
        state = button.evaluate(REACHABLE)
        assert state["onTop"] and state["inWindow"] and state["height"] >= 20, (name, state)
        box = button.bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        assert page.locator("#classes .class.active .name").inner_text() == name
        assert page.locator("#current-class").inner_text() == name

    # The view controls: the opacity slider and, once opened, the display sliders and reset.
    page.locator("#display summary").evaluate("(el) => el.scrollIntoView({block: 'nearest'})")
    page.locator("#display summary").click()
    for selector in ["#opacity", "#show-overlay", "#show-confidence", "[data-action=fit]", "#display-brightness",
                     "#display-contrast", "#display-gamma-input", "#display-reset"]:
        state = page.locator(selector).evaluate(REACHABLE)
        assert state["onTop"] and state["inWindow"], (selector, state)
    slider = page.locator("#opacity")
    slider.evaluate("(el) => el.scrollIntoView({block: 'nearest'})")
    box = slider.bounding_box()
    assert box["width"] >= 100
    page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)  # a real click on the track
    assert int(slider.input_value()) > 80
    assert float(page.evaluate("getComputedStyle(document.querySelector('#overlay')).opacity")) > 0.8
    assert not [m for m in page.console_messages if m.startswith("pageerror")]


def test_polygon_preview_stays_thin_and_connected_at_high_zoom(page, live_server, login, project):
    round_ = make_round(project, number=0, state=Round.State.LABELING)
    make_query(round_, make_image(project, size=(W, H), pixels=gradient()))  # no suggestion: a plain background
    login(page, "annotator", "pw-annotator")
    open_query(page, live_server, project)
    page.keyboard.press("l")
    # Zoom to the maximum (32×) around image point (40, 30).
    page.evaluate("""() => {
        const v = window.labeler.view, at = v.toClient(40, 30);
        v.zoomAt(at.x, at.y, 1000);
    }""")
    assert page.evaluate("window.labeler.view.scale") == 32
    vertices = [(36.2, 27.1), (44.7, 28.3), (41.3, 33.6)]
    for x, y in vertices:
        page.mouse.click(*client_point(page, x, y))
    page.mouse.move(*client_point(page, 37, 33))  # the pointer: the rubber band follows it
    a, b = (np.array(client_point(page, *v)) for v in vertices[:2])

    shot = screen(page)
    white = (shot > 225).all(-1)
    direction = (b - a) / np.linalg.norm(b - a)
    normal = np.array([-direction[1], direction[0]])
    length = int(np.linalg.norm(b - a))
    assert length > 200  # far apart on screen at this zoom
    widths, gaps = [], 0
    for t in range(10, length - 10):  # away from the vertex markers
        centre = a + direction * t
        across = [white[int(round(p[1])), int(round(p[0]))] for p in (centre + normal * s for s in range(-12, 13))]
        if not any(across[9:16]):  # nothing white within ±3 px of the ideal line
            gaps += 1
        widths.append(sum(across))
    assert gaps == 0, "the edge is broken"
    assert max(widths) <= 4, f"the edge is {max(widths)} px thick"  # a 2 px line, not a 64 px bar
    # Between the vertices the image shows through: the preview is a line, not a filled band.
    middle = (a + b) / 2 + normal * 10
    assert not white[int(middle[1]), int(middle[0])]

    page.keyboard.press("Enter")  # and it still fills exactly the polygon
    assert page.evaluate("window.labeler.doc.labels.filter((v) => v !== 255).length") > 0
    assert page.evaluate("document.querySelector('#sketch .edge').getAttribute('points')") == ""


def test_brightness_contrast_gamma_change_the_view_only_and_are_remembered(page, live_server, login, project):
    round_ = make_round(project, number=0, state=Round.State.LABELING)
    query = make_query(round_, make_image(project, size=(W, H), pixels=gradient()))
    suggestion = np.full((H, W), 255, np.uint8)
    suggestion[H // 2:] = 0
    make_suggestion(query, suggestion, np.full((H, W), 0.8))
    login(page, "annotator", "pw-annotator")
    open_query(page, live_server, project)

    data = """() => {
        const img = document.querySelector('#photo'), c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        const overlay = document.querySelector('#overlay');
        const sum = (d) => d.reduce((s, v, i) => (s + v * ((i % 251) + 1)) % 1000000007, 0);
        return {photo: sum(ctx.getImageData(0, 0, c.width, c.height).data),
                overlay: sum(overlay.getContext('2d').getImageData(0, 0, overlay.width, overlay.height).data),
                labels: sum(window.labeler.doc.labels), pending: sum(window.labeler.doc.pending)};
    }"""
    before = page.evaluate(data)
    x, y = client_point(page, 30.5, 15.5)  # upper half: no suggestion over the photo there
    clip = {"x": x - 2, "y": y - 2, "width": 5, "height": 5}
    original = screen(page, clip).reshape(-1, 3).mean(0)

    # Keyboard only: Tab to the summary, open it, then the sliders with the arrow keys.
    page.locator("#display summary").focus()
    page.keyboard.press("Enter")
    assert page.locator("#display").evaluate("(d) => d.open")
    page.locator("#display-gamma-input").focus()
    for _ in range(20):  # 1.00 → 2.00 in steps of 0.05
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")  # back to brightness
    assert page.evaluate("document.activeElement.id") == "display-brightness"
    for _ in range(4):  # 100 → 120 %
        page.keyboard.press("ArrowRight")
    settings = {"brightness": 1.2, "contrast": 1, "gamma": 2}
    assert page.locator("#display-gamma-value").inner_text() == "2.00"
    assert page.locator("#display-brightness-value").inner_text() == "120 %"
    assert "(adjusted)" in page.locator("#display summary").inner_text()
    page.wait_for_timeout(100)
    shown = screen(page, clip).reshape(-1, 3).mean(0)
    expected = np.array(page.evaluate(f"""async ([v, s]) => {{
        const D = await import("{LABEL}/display.js");
        return v.map((c) => 255 * D.displayedValue(c / 255, s));
    }}""", [original.tolist(), settings]))
    assert (shown > original + 20).all()  # visibly brighter
    assert np.abs(shown - expected).max() < 8, (original, shown, expected)

    # The photo, the overlay and the masks are untouched; only the screen changed.
    assert page.evaluate(data) == before
    # The overlay keeps its true colours: the filter is on the photo alone.
    assert page.evaluate("getComputedStyle(document.querySelector('#overlay')).filter") == "none"

    # Remembered for this user in this browser: a reload brings them back, opened.
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    assert page.locator("#display").evaluate("(d) => d.open")
    assert page.locator("#display-gamma-value").inner_text() == "2.00"
    assert "brightness(1.2)" in page.evaluate("document.querySelector('#photo').style.filter")
    assert page.evaluate("JSON.parse(localStorage.getItem('maskloop-display-annotator'))") == settings

    # Reset: back to the plain photo, and nothing kept.
    page.locator("#display-reset").focus()
    page.keyboard.press("Enter")
    page.wait_for_timeout(100)
    assert page.evaluate("document.querySelector('#photo').style.filter") == "none"
    assert page.evaluate("localStorage.getItem('maskloop-display-annotator')") is None
    assert np.abs(screen(page, clip).reshape(-1, 3).mean(0) - original).max() < 2
