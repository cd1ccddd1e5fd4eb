"""Review in Chromium: an annotator submits, a reviewer rejects with a comment, the annotator sees it, fixes and
resubmits, the reviewer accepts, and only the accepted version reaches the training set the round worker builds
(``round_data``). Plus the review queue and the dashboard's agreement panel, photographed for the docs when
MASKLOOP_SCREENSHOTS names a folder."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from annotator.imaging import encode_png
from annotator.models import Membership, Project, Query, Review, Round
from annotator.services.labeling import annotation_save, query_claim
from annotator.services.projects import membership_set
from annotator.selectors_review import query_latest_annotation
from annotator.services.round_data import round_data
from tests.factories import make_image, make_query, make_round, make_suggestion

pytestmark = pytest.mark.django_db(transaction=True)

W, H = 120, 90
ROAD, CAR, SKY, VOID = 0, 1, 2, 255


def gradient(width: int = W, height: int = H) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 120)], -1).astype(np.uint8)


def read_png(path: str) -> np.ndarray:
    return np.asarray(PILImage.open(path))


def labeler_point(page, x: float, y: float) -> tuple[float, float]:
    p = page.evaluate("([x, y]) => window.labeler.view.toClient(x, y)", [x, y])
    return p["x"], p["y"]


def reviewer_point(page, x: float, y: float) -> tuple[float, float]:
    p = page.evaluate("([x, y]) => window.reviewer.view.toClient(x, y)", [x, y])
    return p["x"], p["y"]


def training_masks(project: Project) -> dict[str, str]:
    """key → mask path of every labeled target sample the round worker would train on."""
    return {s.key: s.mask for s in round_data(project).labeled if s.key.startswith("image-")}


@pytest.fixture
def reviewer(project, django_user_model):
    user = django_user_model.objects.create_user("rita", password="pw-rita")
    membership_set(project=project, user=user, role=Membership.Role.REVIEWER)
    return user


@pytest.fixture
def reviewed_round(project):
    Project.objects.filter(pk=project.pk).update(
        review_mode=Project.ReviewMode.ALL, training_source=Project.TrainingSource.ACCEPTED)
    project.refresh_from_db()
    round_ = make_round(project, number=0, state=Round.State.LABELING)
    query = make_query(round_, make_image(project, name="street.png", size=(W, H), pixels=gradient(),
                                          domain="target", split="pool"), priority=0)
    suggestion = np.full((H, W), VOID, np.uint8)
    suggestion[H // 2:] = ROAD
    make_suggestion(query, suggestion, np.full((H, W), 0.8))
    # A second query nobody labels here keeps the round open (closing it would start a training job).
    make_query(round_, make_image(project, name="later.png", size=(W, H), domain="target", split="pool"),
               priority=5)
    return query


def submit_on_page(page, query) -> None:
    """Submit the open labeling page; the page then moves on (to the next query or the queue)."""
    here = f"/label/{query.pk}/"
    page.keyboard.press("Control+Enter")
    dialog = page.locator("#dialog[open]")
    try:
        dialog.wait_for(timeout=3000)
        page.keyboard.press("Enter")  # accept the suggestion nobody accepted, if asked
    except Exception:
        pass
    page.wait_for_url(lambda url: here not in url, timeout=15000)


def test_reject_fix_resubmit_accept_and_only_the_accepted_version_trains(
        browser, page, live_server, login, project, users, reviewer, reviewed_round):
    query = reviewed_round
    key = f"image-{query.image_id}"

    # 1. The annotator fills the upper half with sky and submits (the suggestion fills the rest with road).
    login(page, "annotator", "pw-annotator")
    page.goto(f"{live_server.url}/projects/{project.pk}/queue/")
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    page.keyboard.press("3")
    page.keyboard.press("g")
    page.mouse.click(*labeler_point(page, 60, 10))
    submit_on_page(page, query)
    first = query.image.annotations.get(version=1)
    assert first.is_submitted and Review.objects.get().annotation == first
    assert key not in training_masks(project)  # accepted only: a pending review does not train

    # 2. The reviewer opens the queue, sees the annotator and the suggestion, marks a spot and rejects.
    rv = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    login(rv, "rita", "pw-rita")
    rv.goto(f"{live_server.url}/projects/{project.pk}/review/")
    assert "street.png" in rv.locator("#review-queue").inner_text()
    assert "annotator" in rv.locator("#review-queue").inner_text()
    rv.click("#review-queue a:has-text('Review')")
    rv.wait_for_selector("body[data-ready='1']", timeout=30000)
    assert rv.locator(".facts .annotator").inner_text() == "annotator"
    rv.check("input[name=layer][value=suggestion]")
    assert rv.locator("#suggestion-layer").is_visible() and not rv.locator("#mask-layer").is_visible()
    rv.check("input[name=layer][value=mask]")
    rv.keyboard.press("m")
    rv.mouse.click(*reviewer_point(rv, 30.5, 70.5))
    assert rv.evaluate("window.reviewer.marks.length") == 1
    rv.click("#reject")
    assert "Write what is wrong" in rv.locator("#decision-status").inner_text()
    rv.fill("#comment", "The lower left is a car, not road.")
    rv.click("#reject")
    rv.wait_for_url(f"**/projects/{project.pk}/review/", timeout=15000)
    review = Review.objects.get()
    assert review.state == Review.State.REJECTED and review.reviewer == reviewer and review.marks == [[30, 70]]
    assert key not in training_masks(project)

    # 3. The annotator sees the comment on the queue and the labeling page, paints the car and resubmits.
    page.goto(f"{live_server.url}/projects/{project.pk}/queue/")
    assert "The lower left is a car" in page.locator("#returned-queries").inner_text()
    page.click("#returned-queries a")
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    assert "The lower left is a car, not road." in page.locator("#rejection-note").inner_text()
    labels = np.array(page.evaluate("Array.from(window.labeler.doc.labels)"), np.uint8).reshape(H, W)
    assert (labels[: H // 2] == SKY).all() and (labels[H // 2:] == ROAD).all()  # the rejected version, to fix
    page.keyboard.press("2")
    page.keyboard.press("g")
    page.mouse.click(*labeler_point(page, 30, 70))  # the road area becomes car
    submit_on_page(page, query)
    query.refresh_from_db()
    assert query.status == Query.Status.SUBMITTED and query.returned_to is None
    second = query.image.annotations.get(version=2)
    again = Review.objects.get(annotation=second)
    assert again.reason == Review.Reason.RESUBMITTED and again.state == Review.State.PENDING
    assert key not in training_masks(project)

    # 4. The reviewer accepts the resubmission.
    rv.goto(f"{live_server.url}/projects/{project.pk}/review/")
    rv.click("#review-queue a:has-text('Review')")
    rv.wait_for_selector("body[data-ready='1']", timeout=30000)
    assert "Resubmitted" in rv.locator(".review-facts").inner_text()
    rv.click("#accept")
    rv.wait_for_url(f"**/projects/{project.pk}/review/", timeout=15000)
    assert Review.objects.get(pk=again.pk).state == Review.State.ACCEPTED

    # 5. Only the accepted version reaches the training set the round worker builds.
    masks = training_masks(project)
    assert masks[key] == second.mask.path
    expected = np.full((H, W), CAR, np.uint8)
    expected[: H // 2] = SKY
    np.testing.assert_array_equal(read_png(masks[key]), expected)
    assert first.mask.path not in masks.values()
    assert not [m for m in page.console_messages if m.startswith("pageerror")]


def _label(query: Query, user, mask: np.ndarray) -> None:
    query_claim(query=query, user=user)
    latest = query_latest_annotation(query=Query.objects.get(pk=query.pk))
    annotation_save(query=query, user=user, mask_png=encode_png(mask), base_version=latest.version if latest else 0,
                    submit=True, time_spent=40.0 + mask.sum() % 50)


def test_the_review_queue_and_the_agreement_panel_show_waiting_reviews_and_agreement(
        browser, page, live_server, login, project, users, reviewer, django_user_model):
    """Three annotators, pairs that agree and one that does not: the numbers and the screenshots."""
    from annotator.services.review import review_accept, review_reject
    from annotator.services.rounds import round_open

    Project.objects.filter(pk=project.pk).update(review_mode=Project.ReviewMode.ALL, agreement_percent=50,
                                                 agreement_threshold=0.75)
    project.refresh_from_db()
    maria = django_user_model.objects.create_user("maria", password="pw-maria")
    membership_set(project=project, user=maria, role=Membership.Role.ANNOTATOR)
    round_ = make_round(project, number=0, state=Round.State.SELECTING)
    queries = []
    for i in range(6):
        q = make_query(round_, make_image(project, name=f"frame_{i:02d}.png", size=(W, H), pixels=gradient(),
                                          domain="target", split="pool"))
        suggestion = np.full((H, W), VOID, np.uint8)
        suggestion[H // 2:] = ROAD
        make_suggestion(q, suggestion, np.full((H, W), 0.8))
        queries.append(q)
    # A validation query nobody labels here (never copied for agreement) keeps the round open.
    make_query(round_, make_image(project, name="open.png", size=(W, H), domain="target", split="val"),
               kind=Query.Kind.VALIDATION)
    round_open(round_=round_)
    rng = np.random.default_rng(3)

    def truth(shift: int) -> np.ndarray:
        mask = np.full((H, W), SKY, np.uint8)
        mask[H // 2 + shift:] = ROAD
        mask[60:80, 20 + shift:50 + shift] = CAR
        return mask

    pairs = Query.objects.filter(round=round_, replica_of__isnull=False).select_related("replica_of")
    for n, replica in enumerate(pairs):
        _label(replica.replica_of, users["annotator"], truth(0))
        _label(replica, maria, truth(2 if n else 14))  # the first pair disagrees, the others nearly agree
    singles = Query.objects.filter(round=round_, replica_of__isnull=True, replicas__isnull=True)
    for n, query in enumerate(singles.filter(kind=Query.Kind.LABEL)):
        _label(query, [users["annotator"], maria, reviewer][n % 3], truth(int(rng.integers(0, 4))))
    pending = list(Review.objects.filter(state=Review.State.PENDING).order_by("pk"))
    assert any(r.reason == Review.Reason.DISAGREEMENT for r in pending)
    singles_reviews = [r for r in pending if r.reason == Review.Reason.ALL]
    review_accept(review=singles_reviews[0], user=users["lead"])
    review_reject(review=singles_reviews[1], user=users["lead"], comment="the car is cut off")

    login(page, "lead", "pw-lead")
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    rows = page.locator("#review-queue tbody tr")
    assert rows.count() == Review.objects.filter(state=Review.State.PENDING).count() >= 2
    assert "Two annotators disagreed" in page.locator("#review-queue").inner_text()
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    panel = page.locator("#review-panel")
    panel.scroll_into_view_if_needed()
    text = panel.inner_text()
    assert "Acceptance per annotator" in text and "Agreement per class" in text
    assert "maria" in page.locator("#agreement-annotators").inner_text()
    assert {"road", "car", "sky"} <= set(page.locator("#agreement-classes tbody td:first-child").all_inner_texts())
    out = os.environ.get("MASKLOOP_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        panel.screenshot(path=str(Path(out) / "review_agreement_panel.png"))
        page.goto(f"{live_server.url}/projects/{project.pk}/review/")
        page.screenshot(path=str(Path(out) / "review_queue.png"), full_page=True)
        disagreement = next(r for r in pending if r.reason == Review.Reason.DISAGREEMENT)
        page.goto(f"{live_server.url}/projects/{project.pk}/review/{disagreement.pk}/")
        page.wait_for_selector("body[data-ready='1']", timeout=30000)
        page.fill("#comment", "Where does the car end? Look at the right edge.")
        page.evaluate("document.querySelector('.panel-body').scrollTop = 0")
        page.screenshot(path=str(Path(out) / "review_page.png"))
