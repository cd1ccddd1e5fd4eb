"""Labeling services: locks, versions, validation, submit/skip, suggestion Dice, superpixels."""
from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from annotator.imaging import encode_png
from annotator.models import Annotation, Query, Round
from annotator.services import superpixels
from annotator.services.errors import Conflict, PermissionDenied, ServiceError
from annotator.services.labeling import (
    InvalidMask,
    QueryLocked,
    RoundClosed,
    StaleVersion,
    annotation_save,
    mask_dice,
    query_claim,
    query_next,
    query_release,
    query_skip,
)
from tests.conftest import png_bytes
from tests.factories import make_annotation, make_image, make_query, make_round, make_suggestion

pytestmark = pytest.mark.django_db

W, H = 16, 12


def mask_of(value: int, *, size=(W, H)) -> np.ndarray:
    return np.full((size[1], size[0]), value, dtype=np.uint8)


@pytest.fixture
def other_annotator(django_user_model, project):
    from annotator.models import Membership
    from annotator.services.projects import membership_set

    user = django_user_model.objects.create_user("second", password="pw-second")
    membership_set(project=project, user=user, role=Membership.Role.ANNOTATOR)
    return user


@pytest.fixture
def round_(project):
    return make_round(project, number=0, state=Round.State.LABELING)


def test_next_hands_out_the_highest_priority_query_and_locks_it(project, users, round_):
    low = make_query(round_, make_image(project, size=(W, H)), priority=5)
    high = make_query(round_, make_image(project, size=(W, H)), priority=1)
    query = query_next(project=project, user=users["annotator"])
    assert query.pk == high.pk
    high.refresh_from_db()
    assert high.assignee == users["annotator"]
    assert high.locked_until > timezone.now() + timedelta(minutes=5)
    assert low.pk != query.pk


def test_two_annotators_never_get_the_same_query(project, users, other_annotator, round_):
    first, second = (make_query(round_, make_image(project, size=(W, H))) for _ in range(2))
    a = query_next(project=project, user=users["annotator"])
    b = query_next(project=project, user=other_annotator)
    assert {a.pk, b.pk} == {first.pk, second.pk}
    assert query_next(project=project, user=users["lead"]) is None  # both locked


def test_next_resumes_the_query_the_user_already_holds(project, users, round_):
    make_query(round_, make_image(project, size=(W, H)), priority=0)
    held = make_query(round_, make_image(project, size=(W, H)), priority=9)
    query_claim(query=held, user=users["annotator"])
    assert query_next(project=project, user=users["annotator"]).pk == held.pk


def test_an_expired_lock_is_handed_to_someone_else(project, users, other_annotator, round_):
    query = make_query(round_, make_image(project, size=(W, H)))
    query_next(project=project, user=users["annotator"])
    Query.objects.filter(pk=query.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert query_next(project=project, user=other_annotator).pk == query.pk


def test_next_prefers_images_nobody_else_is_working_on(project, users, other_annotator, round_):
    shared = make_image(project, size=(W, H))
    region = np.zeros((H, W), bool)
    region[:4, :4] = True
    first = make_query(round_, shared, region=region, priority=0)
    same_image = make_query(round_, shared, region=~region, priority=1)
    other_image = make_query(round_, make_image(project, size=(W, H)), priority=2)
    assert query_next(project=project, user=users["annotator"]).pk == first.pk
    assert query_next(project=project, user=other_annotator).pk == other_image.pk
    assert query_next(project=project, user=users["lead"]).pk == same_image.pk  # rather that than nothing


def test_next_returns_none_outside_a_labeling_round(project, users):
    round_ = make_round(project, number=0, state=Round.State.TRAINING)
    make_query(round_, make_image(project, size=(W, H)))
    assert query_next(project=project, user=users["annotator"]) is None


def test_outsiders_get_no_query(project, users, round_):
    make_query(round_, make_image(project, size=(W, H)))
    with pytest.raises(PermissionDenied):
        query_next(project=project, user=users["outsider"])


@pytest.mark.django_db(transaction=True)
def test_concurrent_next_calls_get_different_queries(project, users, other_annotator, round_):
    """Two annotators asking at the same moment, on separate connections (threads)."""
    from django.db import connection

    for _ in range(2):
        make_query(round_, make_image(project, size=(W, H)))
    results, errors = {}, []
    barrier = threading.Barrier(2)

    def ask(user):
        try:
            barrier.wait(timeout=10)
            results[user.username] = query_next(project=project, user=user).pk
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(u,)) for u in (users["annotator"], other_annotator)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(set(results.values())) == 2


def test_saves_add_versions_with_parents(project, users, round_):
    query = query_claim(query=make_query(round_, make_image(project, size=(W, H))), user=users["annotator"])
    first = annotation_save(query=query, user=users["annotator"], mask_png=encode_png(mask_of(0)), base_version=0)
    second = annotation_save(query=query, user=users["annotator"], mask_png=encode_png(mask_of(1)), base_version=1,
                             time_spent=3.5)
    assert (first.annotation.version, second.annotation.version) == (1, 2)
    assert second.annotation.parent == first.annotation
    assert not second.annotation.is_submitted
    assert second.annotation.labeled_pixels == W * H
    assert Annotation.objects.filter(image=query.image).count() == 2
    with first.annotation.mask.open("rb") as handle:  # never overwritten
        from PIL import Image as PILImage

        assert (np.asarray(PILImage.open(handle)) == 0).all()
    query.refresh_from_db()
    assert query.time_spent_seconds == pytest.approx(3.5)


@pytest.fixture
def held_query(project, users, round_):
    query = make_query(round_, make_image(project, size=(W, H)))
    return query_claim(query=query, user=users["annotator"])


def test_a_stale_base_version_is_refused_with_the_latest_version(project, users, held_query):
    make_annotation(held_query, mask_of(2), author=users["lead"], submitted=False)
    with pytest.raises(StaleVersion) as caught:
        annotation_save(query=held_query, user=users["annotator"], mask_png=encode_png(mask_of(0)), base_version=0)
    assert caught.value.latest.version == 1
    assert caught.value.latest.author == users["lead"]
    assert held_query.image.annotations.count() == 1


def test_an_identical_draft_stores_nothing_but_books_the_time(users, held_query):
    first = annotation_save(query=held_query, user=users["annotator"], mask_png=encode_png(mask_of(1)), base_version=0)
    again = annotation_save(query=held_query, user=users["annotator"], mask_png=png_bytes(mask_of(1)), base_version=1,
                            time_spent=7)
    assert not again.created and again.annotation.pk == first.annotation.pk
    held_query.refresh_from_db()
    assert held_query.time_spent_seconds == pytest.approx(7)
    assert held_query.image.annotations.count() == 1


@pytest.mark.parametrize(
    "png, message",
    [
        (encode_png(mask_of(0, size=(W + 1, H))), "but the image is"),
        (encode_png(mask_of(3)), "neither class ids"),  # the project has classes 0..2
        (png_bytes(np.zeros((H, W, 3), np.uint8)), "single-channel"),
        (b"not a png", "not a readable image"),
    ],
)
def test_invalid_masks_are_refused(users, held_query, png, message):
    with pytest.raises(InvalidMask, match=message):
        annotation_save(query=held_query, user=users["annotator"], mask_png=png, base_version=0)
    assert held_query.image.annotations.count() == 0


def test_void_pixels_are_valid(users, held_query):
    mask = mask_of(255)
    mask[0, 0] = 2
    result = annotation_save(query=held_query, user=users["annotator"], mask_png=encode_png(mask), base_version=0)
    assert result.annotation.labeled_pixels == 1


def test_saving_needs_the_lock(project, users, other_annotator, held_query):
    with pytest.raises(QueryLocked):
        annotation_save(query=held_query, user=other_annotator, mask_png=encode_png(mask_of(0)), base_version=0)
    Query.objects.filter(pk=held_query.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    result = annotation_save(query=held_query, user=other_annotator, mask_png=encode_png(mask_of(0)), base_version=0)
    held_query.refresh_from_db()
    assert result.created and held_query.assignee == other_annotator


def test_an_expired_own_lock_is_renewed_by_saving(users, held_query):
    Query.objects.filter(pk=held_query.pk).update(locked_until=timezone.now() - timedelta(hours=1))
    annotation_save(query=held_query, user=users["annotator"], mask_png=encode_png(mask_of(0)), base_version=0)
    held_query.refresh_from_db()
    assert held_query.locked_until > timezone.now()


def test_submit_marks_the_query_done_and_scores_the_suggestion_in_the_region(project, users, round_):
    image = make_image(project, size=(W, H))
    region = np.zeros((H, W), bool)
    region[:, : W // 2] = True  # the left half is asked for
    query = make_query(round_, image, region=region)
    suggested = mask_of(255)
    suggested[:, :4] = 0  # 4 columns suggested as class 0 inside the region
    suggested[:, W // 2:] = 1  # outside the region: ignored
    make_suggestion(query, suggested, np.full((H, W), 0.9))
    query_claim(query=query, user=users["annotator"])
    final = mask_of(255)
    final[:, :2] = 0  # agrees with 2 of the 4 suggested columns
    final[:, 2: W // 2] = 2
    result = annotation_save(query=query, user=users["annotator"], mask_png=encode_png(final), base_version=0,
                             submit=True, time_spent=12)
    query.refresh_from_db()
    assert query.status == Query.Status.SUBMITTED and query.submitted_at and query.locked_until is None
    assert result.annotation.is_submitted
    # 2·|agree| / (|suggested in region| + |labeled in region|) = 2·2H / (4H + 8H)
    assert result.annotation.suggestion_dice == pytest.approx(2 * 2 * H / (4 * H + (W // 2) * H))
    assert query.time_spent_seconds == pytest.approx(12)


def test_the_last_submit_closes_the_round_and_opens_the_next(project, users, round_):
    first, last = (make_query(round_, make_image(project, size=(W, H))) for _ in range(2))
    for query in (first, last):
        query_claim(query=query, user=users["annotator"])
    annotation_save(query=first, user=users["annotator"], mask_png=encode_png(mask_of(0)), base_version=0, submit=True)
    round_.refresh_from_db()
    assert round_.state == Round.State.LABELING
    result = annotation_save(query=last, user=users["annotator"], mask_png=encode_png(mask_of(0)), base_version=0,
                             submit=True)
    round_.refresh_from_db()
    assert round_.state == Round.State.CLOSED
    assert result.next_round.number == 1 and result.next_round.state == Round.State.TRAINING


def test_a_submitted_query_takes_no_more_saves(users, held_query):
    annotation_save(query=held_query, user=users["annotator"], mask_png=encode_png(mask_of(0)), base_version=0,
                    submit=True)
    with pytest.raises(Conflict, match="submitted already"):
        annotation_save(query=held_query, user=users["annotator"], mask_png=encode_png(mask_of(1)), base_version=1)


def test_after_the_round_closed_drafts_are_kept_but_submits_refused(project, users, round_, held_query):
    Round.objects.filter(pk=round_.pk).update(state=Round.State.CLOSED)
    draft = annotation_save(query=held_query, user=users["annotator"], mask_png=encode_png(mask_of(0)), base_version=0)
    assert draft.created
    with pytest.raises(Conflict, match="closed"):
        annotation_save(query=held_query, user=users["annotator"], mask_png=encode_png(mask_of(0)), base_version=1,
                        submit=True)
    # A submit of new work is refused too, but the work itself is kept as a draft version.
    with pytest.raises(RoundClosed, match="kept as draft version 2") as refused:
        annotation_save(query=held_query, user=users["annotator"], mask_png=encode_png(mask_of(1)), base_version=1,
                        submit=True)
    kept = refused.value.saved.annotation
    assert (kept.version, kept.is_submitted) == (2, False)
    assert Query.objects.get(pk=held_query.pk).status == Query.Status.PENDING


def test_skip_needs_a_reason_and_can_close_the_round(project, users, round_, held_query):
    with pytest.raises(ServiceError, match="why"):
        query_skip(query=held_query, user=users["annotator"], reason="  ")
    next_round = query_skip(query=held_query, user=users["annotator"], reason="too dark", time_spent=4)
    held_query.refresh_from_db()
    assert held_query.status == Query.Status.SKIPPED and held_query.skip_reason == "too dark"
    assert held_query.time_spent_seconds == pytest.approx(4)
    assert next_round is not None and next_round.number == 1


def test_skip_of_a_query_someone_else_holds_is_refused(users, other_annotator, held_query):
    with pytest.raises(QueryLocked):
        query_skip(query=held_query, user=other_annotator, reason="mine now")


def test_release_hands_the_query_back_only_for_its_holder(users, other_annotator, held_query):
    query_release(query=held_query, user=other_annotator)
    held_query.refresh_from_db()
    assert held_query.assignee == users["annotator"]
    query_release(query=held_query, user=users["annotator"], time_spent=2)
    held_query.refresh_from_db()
    assert held_query.assignee is None and held_query.locked_until is None
    assert held_query.time_spent_seconds == pytest.approx(2)


def test_claim_of_a_locked_query_is_refused(users, other_annotator, held_query):
    with pytest.raises(QueryLocked, match="annotator is labeling"):
        query_claim(query=held_query, user=other_annotator)


def test_mask_dice():
    a = np.array([[0, 0, 255, 1]], np.uint8)
    b = np.array([[0, 1, 1, 255]], np.uint8)
    assert mask_dice(a, b) == pytest.approx(2 * 1 / (3 + 3))
    assert mask_dice(a, a) == 1.0
    assert mask_dice(a, b, within=np.array([[False, False, True, True]])) == 0.0
    assert mask_dice(np.full((1, 2), 255, np.uint8), np.full((1, 2), 255, np.uint8)) is None


# --- superpixels: computed once at full resolution, cached as a 16-bit PNG on the image ---


def test_superpixels_are_computed_once_and_cached(project, monkeypatch):
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:, 30:] = 200
    image = make_image(project, size=(60, 40), pixels=pixels)
    labels = superpixels.image_superpixels(image=image)
    assert labels.shape == (40, 60) and labels.dtype == np.int32
    assert labels.max() >= 1  # at least the two halves
    assert not set(np.unique(labels[:, :28])) & set(np.unique(labels[:, 32:]))  # no region crosses the edge
    image.refresh_from_db()
    assert image.superpixels.name.endswith(".png")

    def fail(*args, **kwargs):
        raise AssertionError("SLIC ran again although the superpixels are cached")

    monkeypatch.setattr(superpixels, "slic_regions", fail)
    assert (superpixels.image_superpixels(image=image) == labels).all()


def test_a_missing_cache_file_is_recomputed(project):
    image = make_image(project, size=(30, 20))
    first = superpixels.image_superpixels(image=image)
    image.refresh_from_db()
    image.superpixels.storage.delete(image.superpixels.name)
    assert (superpixels.image_superpixels(image=image) == first).all()


def test_16_bit_ids_round_trip():
    labels = np.arange(300 * 250, dtype=np.int32).reshape(250, 300) % 65_536
    assert (superpixels.decode_superpixels(superpixels.encode_superpixels(labels)) == labels).all()
    with pytest.raises(ValueError):
        superpixels.encode_superpixels(np.full((2, 2), 70_000))


def test_segment_count_follows_the_selector_density_and_is_capped():
    assert superpixels.superpixel_count(width=320, height=240) == 150
    assert superpixels.superpixel_count(width=8000, height=5000) == superpixels.MAX_SEGMENTS
