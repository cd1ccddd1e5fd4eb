"""The labeling page's pure JS modules, run in Chromium: rasterisation, fills, history, PNG codec, merges.

Each test imports the ES modules from the live server's static files and
checks them against brute-force definitions or against Pillow/numpy.
"""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image as PILImage

# Playwright's sync API runs an event loop in this thread; the ORM calls of the
# fixtures are still synchronous and safe here.

LABEL = "/static/frontend/label"


@pytest.fixture
def js(page, live_server):
    """``js(body, arg)``: run an async function body with the modules A (algorithms), P (png),
    H (history), D (document) in scope; returns its JSON result."""
    page.goto(f"{live_server.url}/login/")

    def run(body: str, arg=None):
        return page.evaluate(
            f"""async (arg) => {{
                const A = await import("{LABEL}/algorithms.js");
                const P = await import("{LABEL}/png.js");
                const H = await import("{LABEL}/history.js");
                const D = await import("{LABEL}/document.js");
                {body}
            }}""",
            arg,
        )

    return run


SPANS_TO_MASK = """
    const toMask = (spans, w, h) => {
        const m = new Array(w * h).fill(0);
        for (let k = 0; k < spans.length; k += 3) for (let x = spans[k + 1]; x <= spans[k + 2]; x++) m[spans[k] * w + x] = 1;
        return m;
    };
"""


def test_brush_spans_equal_the_per_pixel_definition(js):
    mismatches = js(SPANS_TO_MASK + """
        const w = 37, h = 29, bad = [];
        const cases = [[5.5, 5.5, 5.5, 5.5, 3], [-4, 3, 50, 20, 2.5], [10.2, 27.9, 11.7, -3, 6.3], [0, 0, 0, 0, 0.2],
                       [18.5, 14.5, 18.5, 14.5, 0.5], [3.3, 8.1, 30.9, 8.1, 4], [12, 2, 12, 26, 1.5], [36.9, 28.9, 30, 20, 9]];
        let seed = 7;
        const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
        for (let i = 0; i < 60; i++) cases.push([rand() * 50 - 6, rand() * 40 - 6, rand() * 50 - 6, rand() * 40 - 6, rand() * 8]);
        for (const [ax, ay, bx, by, r] of cases) {
            const got = toMask(A.capsuleSpans(ax, ay, bx, by, r, w, h), w, h);
            for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
                const want = A.inCapsule(x, y, ax, ay, bx, by, Math.max(r, 0.5)) ? 1 : 0;
                if (got[y * w + x] !== want) bad.push([ax, ay, bx, by, r, x, y]);
            }
        }
        return bad.slice(0, 5);
    """)
    assert mismatches == []


def test_a_click_paints_a_disc_of_the_brush_radius(js):
    mask = np.array(js(SPANS_TO_MASK + "return toMask(A.capsuleSpans(5.5, 5.5, 5.5, 5.5, 2, 11, 11), 11, 11);"))
    yy, xx = np.mgrid[0:11, 0:11]
    assert (mask.reshape(11, 11) == (((xx + 0.5 - 5.5) ** 2 + (yy + 0.5 - 5.5) ** 2) <= 4)).all()


def test_polygon_fill_takes_pixels_whose_centres_are_inside(js):
    got = js(SPANS_TO_MASK + """
        const square = toMask(A.polygonSpans([[2, 1], [6, 1], [6, 4], [2, 4]], 9, 6), 9, 6);
        const tri = [[1.2, 0.7], [17.8, 3.1], [6.4, 13.9]];
        return {square, triangle: toMask(A.polygonSpans(tri, 20, 15), 20, 15)};
    """)
    square = np.array(got["square"]).reshape(6, 9)
    expected = np.zeros((6, 9), int)
    expected[1:4, 2:6] = 1
    assert (square == expected).all()
    # Even-odd rule at pixel centres, by brute force with matplotlib's path test.
    from matplotlib.path import Path

    tri = Path([(1.2, 0.7), (17.8, 3.1), (6.4, 13.9)])
    yy, xx = np.mgrid[0:15, 0:20]
    inside = tri.contains_points(np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1)).reshape(15, 20)
    assert (np.array(got["triangle"]).reshape(15, 20) == inside).all()


def test_flood_fill_is_4_connected_and_stops_at_the_limit(js):
    keys = np.zeros((7, 9), np.uint16)
    keys[:, 4] = 1  # a wall
    keys[3, 4] = 0  # with a gap
    keys[0, 0] = 5
    limit = np.ones((7, 9), np.uint8)
    limit[:, 7:] = 0
    got = js(SPANS_TO_MASK + """
        const keys = Uint16Array.from(arg.keys), limit = Uint8Array.from(arg.limit);
        return {
            open: toMask(A.floodFillSpans(keys, 9, 7, 1, 1), 9, 7),
            limited: toMask(A.floodFillSpans(keys, 9, 7, 1, 1, limit), 9, 7),
            outside: A.floodFillSpans(keys, 9, 7, 8, 0, limit).length,
            diagonal: toMask(A.floodFillSpans(keys, 9, 7, 0, 0), 9, 7),
        };
    """, {"keys": keys.ravel().tolist(), "limit": limit.ravel().tolist()})
    open_ = np.array(got["open"]).reshape(7, 9)
    assert (open_ == ((keys == 0))).all()  # through the gap, not into the wall or the corner
    limited = np.array(got["limited"]).reshape(7, 9)
    assert (limited == ((keys == 0) & (limit == 1))).all()
    assert got["outside"] == 0
    assert np.array(got["diagonal"]).sum() == 1


def test_superpixel_spans_come_from_label_boxes(js):
    ids = np.arange(6 * 8).reshape(6, 8) // 3 % 5
    got = js(SPANS_TO_MASK + """
        const ids = Uint16Array.from(arg);
        const boxes = A.labelBoxes(ids, 8, 6);
        return [0, 1, 2, 3, 4].map((id) => toMask(A.labelSpans(ids, 8, 6, id, boxes), 8, 6));
    """, ids.ravel().tolist())
    for label, mask in enumerate(got):
        assert (np.array(mask).reshape(6, 8) == (ids == label)).all()


def test_region_outline_surrounds_the_region_without_covering_it(js):
    inside = np.zeros((7, 7), np.uint8)
    inside[3, 3] = 1
    outline = np.array(js("return Array.from(A.regionOutline(Uint8Array.from(arg), 7, 7, 1));",
                          inside.ravel().tolist())).reshape(7, 7)
    expected = np.zeros((7, 7), int)
    expected[2:5, 2:5] = 1
    expected[3, 3] = 0
    assert (outline == expected).all()


def test_run_length_code_and_three_way_merge(js):
    got = js("""
        const bytes = Uint8Array.from([1, 1, 1, 255, 255, 2, 1, 1]);
        const runs = A.rleEncode(bytes);
        const back = A.rleDecode(runs, new Uint8Array(bytes.length));
        const base = Uint8Array.from([0, 0, 0, 0]);
        const mine = Uint8Array.from([1, 0, 1, 0]);
        const theirs = Uint8Array.from([0, 2, 3, 0]);
        const m = A.mergeMasks(base, mine, theirs), t = A.mergeMasks(base, mine, theirs, "theirs");
        return {runs: Array.from(runs), back: Array.from(back), mine: Array.from(m.merged), conflicts: m.conflicts,
                theirs: Array.from(t.merged), changed: m.mineChanged};
    """)
    assert got["runs"] == [1, 3, 255, 2, 2, 1, 1, 2]
    assert got["back"] == [1, 1, 1, 255, 255, 2, 1, 1]
    assert got["mine"] == [1, 2, 1, 0] and got["conflicts"] == 1 and got["changed"] == 2
    assert got["theirs"] == [1, 2, 3, 0]


def test_png_encoder_output_is_a_valid_index_png(js):
    values = (np.arange(53 * 31) * 7 % 256).astype(np.uint8).reshape(31, 53)
    values[0, :] = 255
    b64 = js("""
        const blob = await P.encodeIndexPng(Uint8Array.from(arg), 53, 31);
        const bytes = new Uint8Array(await blob.arrayBuffer());
        let s = ""; for (const b of bytes) s += String.fromCharCode(b);
        return btoa(s);
    """, values.ravel().tolist())
    image = PILImage.open(io.BytesIO(base64.b64decode(b64)))
    assert image.mode == "L" and image.size == (53, 31)
    assert (np.asarray(image) == values).all()


@pytest.mark.parametrize("mode", ["L", "I;16", "P"])
def test_png_decoder_reads_what_pillow_writes(js, mode):
    rng = np.random.default_rng(3)
    if mode == "I;16":
        values = rng.integers(0, 65535, (23, 41)).astype(np.uint16)
        image = PILImage.fromarray(values)
    else:
        values = rng.integers(0, 12, (23, 41)).astype(np.uint8)
        values[5:15, 5:30] = 255  # long runs: Pillow picks other row filters there
        image = PILImage.fromarray(values, mode="L")
        if mode == "P":
            image = image.convert("P")
            values = np.asarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    got = js("""
        const bytes = Uint8Array.from(atob(arg), (c) => c.charCodeAt(0));
        const png = await P.decodePng(bytes.buffer);
        return {w: png.width, h: png.height, data: Array.from(png.data)};
    """, base64.b64encode(buffer.getvalue()).decode())
    assert (got["w"], got["h"]) == (41, 23)
    assert (np.array(got["data"]).reshape(23, 41) == values).all()


def test_history_undoes_and_redoes_hundreds_of_steps_exactly(js):
    got = js("""
        const w = 300, h = 200;
        const doc = new D.MaskDocument({width: w, height: h, historyOptions: {tile: 64}});
        const pending = doc.pending; pending.fill(1, 0, w * 50);
        const initial = doc.labels.slice(), initialPending = pending.slice();
        const snapshots = [];
        for (let i = 0; i < 150; i++) {
            doc.begin("stroke");
            const spans = A.capsuleSpans((i * 37) % w, (i * 53) % h, (i * 91) % w, (i * 17) % h, 3 + (i % 9), w, h);
            if (i % 10 === 9) doc.erase(spans); else doc.paint(spans, i % 3);
            doc.commit();
            snapshots.push(doc.labels.slice());
        }
        const final = doc.labels.slice();
        let undone = 0;
        while (doc.undo()) undone++;
        const backToStart = doc.labels.every((v, i) => v === initial[i]) && doc.pending.every((v, i) => v === initialPending[i]);
        for (let i = 0; i < 40; i++) doc.redo();
        const at40 = doc.labels.every((v, i) => v === snapshots[39][i]);
        while (doc.redo()) {}
        const atEnd = doc.labels.every((v, i) => v === final[i]);
        doc.begin("nothing"); doc.paint(A.capsuleSpans(1, 1, 1, 1, 1, w, h), doc.labels[w + 1]);
        const emptyStep = doc.commit();
        return {undone, backToStart, at40, atEnd, emptyStep, revision: doc.revision};
    """)
    assert got["undone"] == 150
    assert got["backToStart"] and got["at40"] and got["atEnd"]
    assert got["emptyStep"] is False  # a change that changes nothing is no undo step


def test_document_rules_one_class_per_pixel_limit_accept_erase(js):
    got = js("""
        const w = 6, h = 2, limit = Uint8Array.from([1,1,1,0,0,0, 1,1,1,0,0,0]);
        const pending = new Uint8Array(w * h).fill(255); pending.fill(2, 0, 6);
        const doc = new D.MaskDocument({width: w, height: h, pending, limit});
        const all = A.selectSpans(w, h, () => true);
        doc.begin("paint"); doc.paint(Int32Array.from([1, 0, 5]), 0); doc.commit();  // row 1, only x <= 2 is editable
        doc.begin("paint"); doc.paint(Int32Array.from([1, 1, 1]), 1); doc.commit();  // painting replaces
        doc.begin("erase"); doc.erase(Int32Array.from([0, 0, 0])); doc.commit();
        const census = doc.census();
        doc.begin("accept"); doc.accept(doc.pendingSpans()); doc.commit();
        return {labels: Array.from(doc.labels), pending: Array.from(doc.pending), census};
    """)
    assert got["labels"] == [255, 2, 2, 255, 255, 255, 0, 1, 0, 255, 255, 255]
    assert got["pending"][0] == 255 and got["pending"][1] == 2
    assert got["census"] == {"confirmed": 3, "suggested": 2, "empty": 1, "total": 6}
