"""Annotator UI speed on a 4000×3000 image, and the labeling page's screenshots.

Starts the real app on a throw-away SQLite database (a temp folder), serves it
with Django's live-server thread, and drives Debian's Chromium with
Playwright exactly as an annotator would (mouse strokes, keyboard saves).

Measured (median of several runs; Chromium's main thread, not the network):

* stroke latency: the work one pointer event costs: rasterise the brush
  segment, record undo tiles, write the mask and redraw the dirty rectangle;
* stroke end: closing the undo step when the button is released;
* whole-image operations: accept the whole suggestion, fill every empty
  pixel, undo, flood fill;
* save round-trip: encode the mask PNG in the browser, POST it, the server
  validates size and class ids, stores a new version, answers.

    python benchmarks/annotator_ui.py                 # the benchmark; writes its section of docs/BENCHMARKS.md
    python benchmarks/annotator_ui.py --no-write      # print only
    python benchmarks/annotator_ui.py --screenshots   # docs/screenshots/labeling*.png from a CamVid dusk frame

The screenshots use a real model's suggestion when a checkpoint is cached
under var/bench/ (benchmarks/domain_adaptation.py writes one), else the
frame's ground truth thinned out, and say which in their caption file.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CAMVID = Path(os.environ.get("MASKLOOP_CAMVID", "/work/shared/datasets/camvid-daydusk"))
CHROMIUM = os.environ.get("MASKLOOP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
PASSWORD = "bench-password"


def setup_django(var_dir: Path) -> None:
    os.environ["MASKLOOP_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


class LiveServer:
    """Django's live-server thread (the one pytest-django uses) on a free port, with static files."""

    def __enter__(self):
        from django.contrib.staticfiles.handlers import StaticFilesHandler
        from django.test.testcases import LiveServerThread

        self.thread = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
        self.thread.daemon = True
        self.thread.start()
        self.thread.is_ready.wait()
        if self.thread.error:
            raise self.thread.error
        self.url = f"http://127.0.0.1:{self.thread.port}"
        return self

    def __exit__(self, *exc):
        self.thread.terminate()


def camvid_classes():
    from annotator.services.projects import ClassSpec, default_hotkey

    data = json.loads((CAMVID / "classes.json").read_text())
    return [ClassSpec(c["id"], c["name"], c["color"], default_hotkey(c["id"])) for c in data["classes"]]


def make_project(name: str):
    from django.contrib.auth import get_user_model

    from annotator.models import Membership, Round
    from annotator.services.projects import ClassSpec, membership_set, project_create
    from tests.factories import make_round

    user_model = get_user_model()
    annotator = user_model.objects.filter(username="annotator").first() or user_model.objects.create_user(
        "annotator", password=PASSWORD)
    if CAMVID.exists():
        classes = camvid_classes()
    else:
        classes = [ClassSpec(i, f"class{i}", f"#{(i * 0x3a5f91) % 0xffffff:06x}", str(i + 1)) for i in range(6)]
    project = project_create(name=name, classes=classes)
    membership_set(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
    return project, make_round(project, number=0, state=Round.State.LABELING)


def launch(playwright, server: LiveServer, *, viewport=(1600, 1000)):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.goto(f"{server.url}/login/")
    page.fill("input[name=username]", "annotator")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    return browser, page


def open_query(page, server: LiveServer, query) -> float:
    started = time.perf_counter()
    page.goto(f"{server.url}/projects/{query.round.project_id}/label/{query.pk}/")
    page.wait_for_selector("body[data-ready='1']", timeout=120_000)
    return time.perf_counter() - started


def client_point(page, x: float, y: float) -> tuple[float, float]:
    p = page.evaluate("([x, y]) => window.labeler.view.toClient(x, y)", [x, y])
    return p["x"], p["y"]


def stats_ms(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))], ordered[-1]


# --- the benchmark ---------------------------------------------------------------------------------


def big_scene(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A CamVid dusk frame and its labels upscaled to width×height (synthetic stripes without the data)."""
    from PIL import Image as PILImage

    frames = sorted((CAMVID / "target" / "images").glob("*.jpg")) if CAMVID.exists() else []
    if frames:
        with PILImage.open(frames[0]) as photo:
            pixels = np.asarray(photo.convert("RGB").resize((width, height), PILImage.BICUBIC))
        with PILImage.open(CAMVID / "target" / "masks" / f"{frames[0].stem}.png") as gt:
            labels = np.asarray(gt.resize((width, height), PILImage.NEAREST))
    else:
        yy, xx = np.mgrid[0:height, 0:width]
        pixels = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], -1).astype(np.uint8)
        labels = ((xx // 400 + yy // 300) % 6).astype(np.uint8)
    return pixels, labels


def run_benchmark(*, width: int, height: int, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.factories import make_image, make_query, make_suggestion

    project, round_ = make_project("UI benchmark")
    pixels, labels = big_scene(width, height)
    suggestion = labels.copy()
    rng = np.random.default_rng(0)
    holes = rng.random((height // 100 + 1, width // 100 + 1)) < 0.3  # 30 % of 100-px blocks left unsuggested
    suggestion[np.kron(holes, np.ones((100, 100), bool))[:height, :width]] = 255
    results: dict = {"size": f"{width}×{height}", "runs": repeats}
    with LiveServer() as server, sync_playwright() as playwright:
        browser, page = launch(playwright, server)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        loads = []
        for _ in range(repeats):
            query = make_query(round_, make_image(project, size=(width, height), pixels=pixels))
            make_suggestion(query, suggestion, np.full((height, width), 0.9))
            loads.append(open_query(page, server, query))
        results["page_load_s"] = statistics.median(loads)
        page.keyboard.press("1")
        page.keyboard.press("b")

        strokes = {}
        for diameter in (20, 100, 400):
            page.evaluate("(r) => { window.labeler.brushRadius = r; }", diameter / 2)
            moves, ends = [], []
            for run in range(repeats):
                y = height * (0.2 + 0.6 * run / max(1, repeats - 1))
                start = page.evaluate("window.labeler.stats.strokeMs.length")
                page.mouse.move(*client_point(page, width * 0.1, y))
                page.mouse.down()
                page.mouse.move(*client_point(page, width * 0.9, y + height * 0.05), steps=60)
                page.mouse.up()
                timings = page.evaluate("(n) => window.labeler.stats.strokeMs.slice(n)", start)
                moves += timings[:-1]  # pointerdown and every pointermove
                ends.append(timings[-1])  # pointerup: the undo step is closed
            strokes[diameter] = {"moves": stats_ms(moves), "end": statistics.median(ends), "events": len(moves)}
        results["strokes"] = strokes
        # Frames while painting: one brush segment per animation frame (a hand moving the mouse at 60 Hz);
        # long frame intervals would mean the compositor cannot keep up with the 12 MP layers.
        frames = page.evaluate("""async ([width, height]) => {
            const l = window.labeler; l.brushRadius = 25; l.doc.begin("frames");
            const intervals = []; let last = null, i = 0;
            await new Promise((resolve) => {
                const frame = (t) => {
                    if (last !== null) intervals.push(t - last);
                    last = t;
                    const x = width * (0.1 + 0.8 * i / 180), y = height * (0.5 + 0.3 * Math.sin(i / 20));
                    const x2 = width * (0.1 + 0.8 * (i + 1) / 180), y2 = height * (0.5 + 0.3 * Math.sin((i + 1) / 20));
                    l.measure(() => l.tools.brush.dab({x, y}, {x: x2, y: y2}));
                    if (++i < 180) requestAnimationFrame(frame); else resolve();
                };
                requestAnimationFrame(frame);
            });
            l.doc.commit(); l.flush();
            return intervals;
        }""", [width, height])
        results["frames"] = {"interval": stats_ms(frames), "slow_share": sum(f > 20 for f in frames) / len(frames)}

        def timed(script: str) -> float:
            return page.evaluate(f"() => {{ const t = performance.now(); {script}; return performance.now() - t; }}")

        big = {}
        big["accept_all_ms"] = timed("window.labeler.acceptAll()")
        big["undo_accept_ms"] = timed("window.labeler.undo()")
        big["fill_empty_ms"] = timed("window.labeler.fillEmpty()")
        page.keyboard.press("g")
        big["flood_fill_ms"] = timed(
            f"window.labeler.tools.fill.down({{x: {width * 0.5}, y: {height * 0.1}}}); window.labeler.flush()")
        big["census_ms"] = timed("window.labeler.doc.census()")
        results["whole_image"] = big

        saves, encodes, sizes = [], [], []
        for run in range(repeats):
            page.evaluate(f"""() => {{
                const l = window.labeler; l.doc.begin('bench');
                l.tools.brush.dab({{x: {100 + 300 * run}, y: 200}}, {{x: {400 + 300 * run}, y: 900}});
                l.doc.commit(); l.flush(); }}""")
            timing = page.evaluate("""async () => {
                const s = window.labeler.saver;
                const t0 = performance.now(); const {blob} = await s.encode(); const t1 = performance.now();
                s.encoded = null;
                const t2 = performance.now(); await s.save(); const t3 = performance.now();
                return {encode: t1 - t0, save: t3 - t2, bytes: blob.size};
            }""")
            encodes.append(timing["encode"])
            saves.append(timing["save"])
            sizes.append(timing["bytes"])
        results["save"] = {"round_trip_ms": statistics.median(saves), "encode_ms": statistics.median(encodes),
                           "png_kb": statistics.median(sizes) / 1024}
        browser.close()
    if errors:
        raise SystemExit(f"the page raised errors: {errors}")
    return results


def report(results: dict) -> str:
    from benchmarks.report import command_line, machine_description, markdown_table

    rows = []
    for diameter, s in results["strokes"].items():
        median, p95, worst = s["moves"]
        rows.append([f"{diameter} px", f"{median:.2f}", f"{p95:.2f}", f"{worst:.2f}", f"{s['end']:.1f}", s["events"]])
    strokes = markdown_table(
        ["brush", "per event median (ms)", "p95 (ms)", "max (ms)", "stroke end (ms)", "events"], rows)
    frames = results["frames"]
    frame_line = (f"Painting one segment per animation frame (180 frames, 50 px brush): frame interval median "
                  f"{frames['interval'][0]:.1f} ms, p95 {frames['interval'][1]:.1f} ms, max {frames['interval'][2]:.1f} ms; "
                  f"{100 * frames['slow_share']:.0f} % of frames slower than 20 ms.")
    big = results["whole_image"]
    whole = markdown_table(["operation", "ms"], [
        ["accept the whole suggestion", f"{big['accept_all_ms']:.0f}"], ["undo it", f"{big['undo_accept_ms']:.0f}"],
        ["fill every empty pixel", f"{big['fill_empty_ms']:.0f}"], ["flood fill (large area)", f"{big['flood_fill_ms']:.0f}"],
        ["count labeled / suggested / empty", f"{big['census_ms']:.0f}"],
    ])
    save = results["save"]
    return "\n".join([
        f"## Annotator UI on a {results['size']} image",
        "",
        f"Machine: {machine_description()}; Chromium headless, software rendering (`--disable-gpu`).",
        f"Command: `{command_line()}`. Median of {results['runs']} runs each; the machine was shared with other "
        "jobs, so treat the numbers as upper bounds.",
        "",
        "**Brush strokes** (one pointer event = rasterise the segment, record undo tiles, write the mask, "
        "redraw the dirty rectangle; a frame at 60 Hz is 16.7 ms):",
        "",
        strokes,
        "",
        frame_line,
        "",
        "**Whole-image operations** (12 MP):",
        "",
        whole,
        "",
        f"**Save round-trip**: {save['round_trip_ms']:.0f} ms median (of which {save['encode_ms']:.0f} ms encode the "
        f"{save['png_kb']:.0f} kB index PNG in the browser; the rest is the POST, server-side validation of size and "
        f"class ids, and storing the version). **Page load** (image, suggestion and mask PNGs decoded, overlay drawn): "
        f"{results['page_load_s']:.1f} s.",
    ])


# --- screenshots -------------------------------------------------------------------------------------


def model_suggestion(image_path: Path, num_classes: int):
    """(mask, confidence float, description) from a cached CamVid checkpoint, or None when there is none."""
    candidates = sorted((ROOT / "var" / "bench").glob("*/*/base-*/meta.json")) + sorted(
        (ROOT / "var" / "bench").glob("*/base-*/meta.json"))
    for meta_path in candidates:
        meta = json.loads(meta_path.read_text())
        if len(meta.get("classes", [])) != num_classes:
            continue
        import torch

        from learning.checkpoint import load_model
        from learning.inference import predict
        from learning.suggestions import calibrate_thresholds, make_suggestion
        from PIL import Image as PILImage

        torch.set_num_threads(1)
        model, meta = load_model(meta_path.parent, device="cpu")
        size = tuple(meta.get("input_size") or (360, 480))
        prediction = next(predict(model, [str(image_path)], size=size, output_size="original", batch_size=1))
        # Thresholds calibrated on the last dusk frames (the validation split by frame order), as a round does.
        frames = sorted((CAMVID / "target" / "images").glob("*.jpg"))[-8:]
        val = [(p.label, p.confidence) for p in predict(model, [str(f) for f in frames], size=size, batch_size=4)]
        gts = [np.asarray(PILImage.open(CAMVID / "target" / "masks" / f"{f.stem}.png")) for f in frames]
        thresholds = calibrate_thresholds(val, gts, num_classes, target_precision=0.95)
        suggestion = make_suggestion(probs=prediction.probs, thresholds=thresholds)
        dusk = meta.get("benchmark_metrics", {}).get("dusk_val", {}).get("miou")
        quality = f", dusk mIoU {dusk:.2f}" if dusk is not None else ""
        description = (f"model {meta['architecture']} from {meta_path.parent.relative_to(ROOT)}{quality}; "
                       f"suggestion = predicted class where confidence reaches its class threshold, calibrated for "
                       f"95 % precision on the last 8 dusk frames")
        # The heat map shows the model's confidence everywhere, also where it suggests nothing.
        return suggestion.mask, prediction.confidence, description
    return None


def take_screenshots(out_dir: Path) -> list[str]:
    from PIL import Image as PILImage
    from playwright.sync_api import sync_playwright

    from tests.factories import make_image, make_query, make_suggestion

    if not CAMVID.exists():
        raise SystemExit(f"{CAMVID} is missing: the screenshots show a real CamVid dusk frame")
    frames = sorted((CAMVID / "target" / "images").glob("*.jpg"))
    project, round_ = make_project("CamVid dusk")
    queries, description = [], ""
    for frame in (frames[20], frames[30]):  # not among the last 8 frames the thresholds are calibrated on
        with PILImage.open(frame) as photo:
            pixels = np.asarray(photo.convert("RGB"))
        with PILImage.open(CAMVID / "target" / "masks" / f"{frame.stem}.png") as gt_file:
            gt = np.asarray(gt_file)
        height, width = gt.shape
        found = model_suggestion(frame, len(camvid_classes()))
        if found is None:
            mask, confidence = gt.copy(), np.full(gt.shape, 0.9, np.float32)
            description = "NO MODEL CHECKPOINT FOUND: the ground truth stands in for the suggestion; retake with a model"
        else:
            mask, confidence, description = found
        image = make_image(project, name=frame.name, size=(width, height), pixels=pixels)
        if not queries:  # the first frame: a whole-image query
            queries.append(make_query(round_, image))
            make_suggestion(queries[-1], mask, confidence)
            continue
        from annotator.services.superpixels import image_superpixels  # the second: a region (superpixel) query

        regions = image_superpixels(image=image)
        suggested = mask != 255
        sizes = np.bincount(regions.ravel(), weights=suggested.ravel(), minlength=regions.max() + 1)
        region = regions == int(np.argmax(sizes * (np.bincount(regions.ravel()) > 300)))
        queries.append(make_query(round_, image, region=region, priority=1))
        make_suggestion(queries[-1], np.where(region, mask, 255).astype(np.uint8), confidence)
    whole, region_query = queries
    frame = frames[20]
    width, height = whole.image.width, whole.image.height

    shots = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with LiveServer() as server, sync_playwright() as playwright:
        browser, page = launch(playwright, server, viewport=(1400, 860))
        open_query(page, server, whole)
        page.wait_for_timeout(300)
        page.screenshot(path=str(out_dir / "labeling.png"))
        shots.append("labeling.png: the suggestion pre-filled, hatched until accepted")
        # Correct the suggestion: accept the road under the cursor, paint a car, show the confidence.
        page.keyboard.press("4")
        page.mouse.move(*client_point(page, width * 0.5, height * 0.9))
        page.keyboard.press("a")
        page.keyboard.press("9")
        page.keyboard.press("b")
        page.evaluate("window.labeler.brushRadius = 6")
        page.mouse.move(*client_point(page, width * 0.16, height * 0.58))
        page.mouse.down()
        page.mouse.move(*client_point(page, width * 0.3, height * 0.6), steps=10)
        page.mouse.up()
        page.mouse.move(*client_point(page, width * 0.62, height * 0.45))
        page.keyboard.press("c")
        page.wait_for_selector("#confidence:not([hidden])")
        page.wait_for_timeout(300)
        page.screenshot(path=str(out_dir / "labeling_confidence.png"))
        shots.append("labeling_confidence.png: road accepted, a car painted, the confidence heat map on")
        page.keyboard.press("c")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("#dialog[open]")
        page.wait_for_timeout(200)
        page.screenshot(path=str(out_dir / "labeling_submit.png"))
        shots.append("labeling_submit.png: Submit & next warns about pixels still empty (or suggested but not accepted)")
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/label/{region_query.pk}/", timeout=60_000)  # the next query: the region
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        page.keyboard.press("s")
        page.wait_for_function("window.labeler.superpixels !== null", timeout=60_000)
        page.wait_for_timeout(300)
        page.screenshot(path=str(out_dir / "labeling_region.png"))
        shots.append("labeling_region.png: a region query, outlined, the rest dimmed, superpixel tool active")
        browser.close()
    (out_dir / "labeling.txt").write_text(
        f"Screenshots of the labeling page (benchmarks/annotator_ui.py --screenshots).\n"
        f"Image: CamVid dusk frame {frame.name}. Suggestion: {description}.\n" + "\n".join(shots) + "\n")
    return [description, *shots]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print the report, leave docs/BENCHMARKS.md alone")
    parser.add_argument("--screenshots", action="store_true", help="write docs/screenshots/labeling*.png instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maskloop-ui-") as var_dir:
        setup_django(Path(var_dir))
        if args.screenshots:
            for line in take_screenshots(ROOT / "docs" / "screenshots"):
                print(line)
            return
        results = run_benchmark(width=args.width, height=args.height, repeats=args.repeats)
    markdown = report(results)
    print(markdown)
    if not args.no_write:
        from benchmarks.report import write_section

        print(f"wrote {write_section('annotator_ui', markdown)}")


if __name__ == "__main__":
    main()
