"""Review and agreement (annotator/services/review.py): what reaches training, who gets a rejected query back,
round closing, the two-annotator flow, conflicts, the API and the pages."""
from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from annotator.imaging import encode_png
from annotator.models import Agreement, Annotation, Membership, Project, Query, Review, Round
from annotator.selectors_review import query_latest_annotation, review_summary
from annotator.services.errors import Conflict, PermissionDenied, ServiceError
from annotator.services.labeling import QueryLocked, StaleVersion, annotation_save, query_claim, query_next
from annotator.services.projects import membership_set
from annotator.services.review import review_accept, review_fix, review_reject
from annotator.services.round_data import latest_labels, round_data
from annotator.services.rounds import round_open
from tests.factories import make_annotation, make_image, make_query, make_round, make_suggestion

pytestmark = pytest.mark.django_db

W, H = 8, 6
V = 255


def mask_of(value: int) -> np.ndarray:
    return np.full((H, W), value, dtype=np.uint8)


def stored(annotation: Annotation) -> np.ndarray:
    from PIL import Image as PILImage

    return np.asarray(PILImage.open(annotation.mask.path))


@pytest.fixture
def people(users, project, django_user_model):
    second = django_user_model.objects.create_user("second", password="pw-second")
    reviewer = django_user_model.objects.create_user("reviewer", password="pw-reviewer")
    membership_set(project=project, user=second, role=Membership.Role.ANNOTATOR)
    membership_set(project=project, user=reviewer, role=Membership.Role.REVIEWER)
    return {**users, "second": second, "reviewer": reviewer}


def configure(project: Project, **settings) -> Project:
    Project.objects.filter(pk=project.pk).update(**settings)
    project.refresh_from_db()
    return project


def submit(query: Query, user, mask: np.ndarray, *, base: int | None = None):
    query_claim(query=query, user=user)
    if base is None:
        latest = query_latest_annotation(query=Query.objects.get(pk=query.pk))
        base = latest.version if latest else 0
    return annotation_save(query=query, user=user, mask_png=encode_png(mask), base_version=base, submit=True)


@pytest.fixture
def labeling_round(project):
    return make_round(project, number=0, state=Round.State.LABELING)


def pool_query(round_, project, name="a.png"):
    return make_query(round_, make_image(project, name=name, size=(W, H), domain="target", split="pool"))


# --- What trains ------------------------------------------------------------------------------------------------


def test_with_review_off_a_submission_trains_at_once(project, people, labeling_round):
    query = pool_query(labeling_round, project)
    result = submit(query, people["annotator"], mask_of(1))
    assert not Review.objects.exists()
    assert latest_labels(project)[query.image_id] == result.annotation


def test_accepted_only_keeps_a_pending_submission_out_of_training_until_accepted(project, people, labeling_round):
    configure(project, review_mode=Project.ReviewMode.ALL, training_source=Project.TrainingSource.ACCEPTED)
    query = pool_query(labeling_round, project)
    result = submit(query, people["annotator"], mask_of(1))
    review = Review.objects.get()
    assert (review.annotation, review.reason, review.state) == (result.annotation, "all", "pending")
    assert latest_labels(project) == {}
    assert [s.mask for s in round_data(project).labeled] == []
    review_accept(review=review, user=people["reviewer"])
    assert latest_labels(project)[query.image_id] == result.annotation


def test_submitted_and_not_rejected_trains_while_pending_but_never_after_a_rejection(project, people, labeling_round):
    configure(project, review_mode=Project.ReviewMode.ALL)
    query = pool_query(labeling_round, project)
    result = submit(query, people["annotator"], mask_of(1))
    assert latest_labels(project)[query.image_id] == result.annotation
    review_reject(review=Review.objects.get(), user=people["reviewer"], comment="the car is road")
    assert latest_labels(project) == {}


def test_the_newest_trainable_version_trains_in_one_query_however_many_versions_exist(
        project, people, labeling_round, django_assert_num_queries):
    queries = [pool_query(labeling_round, project, name=f"{i}.png") for i in range(3)]
    newest = {}
    for query in queries:
        for value in (1, 2, 3):
            newest[query.image_id] = make_annotation(query, mask_of(value), author=people["annotator"])
        make_annotation(query, mask_of(4), author=people["annotator"], submitted=False)  # a newer draft never trains
    # A reviewer rejected the newest version of the first image: its version 2 trains.
    first = queries[0].image_id
    Review.objects.create(query=queries[0], annotation=newest[first], reviewer=people["reviewer"],
                          state=Review.State.REJECTED, reason=Review.Reason.ALL)
    expected = {**newest, first: Annotation.objects.get(image_id=first, version=2)}
    with django_assert_num_queries(1):
        labels = latest_labels(project)
    assert labels == expected


def test_exports_follow_the_training_rule_and_leave_a_rejected_mask_out(project, people, labeling_round):
    from annotator.services.exports import labeled_images

    configure(project, review_mode=Project.ReviewMode.ALL)
    query = pool_query(labeling_round, project)
    result = submit(query, people["annotator"], mask_of(1))
    assert [(item.image.pk, item.annotation_version) for item in labeled_images(project=project)] == [
        (query.image_id, result.annotation.version)]
    review_reject(review=Review.objects.get(), user=people["reviewer"], comment="the car is road")
    assert [item for item in labeled_images(project=project) if item.image.pk == query.image_id] == []


def test_a_rejected_query_goes_back_to_its_annotator_only_and_a_resubmission_is_reviewed_again(
        project, people, labeling_round):
    configure(project, review_mode=Project.ReviewMode.SAMPLE, review_sample_percent=1,
              training_source=Project.TrainingSource.ACCEPTED)
    query = pool_query(labeling_round, project)
    pool_query(labeling_round, project, name="b.png")  # still to label: the round stays open
    first = submit(query, people["annotator"], mask_of(1)).annotation
    review, _ = Review.objects.get_or_create(annotation=first, defaults={"query": query, "reason": "sample"})
    review_reject(review=review, user=people["reviewer"], comment="sky, not car", marks=[[2, 3]])
    query.refresh_from_db()
    assert (query.status, query.returned_to, query.assignee) == ("pending", people["annotator"], people["annotator"])
    review.refresh_from_db()
    assert review.marks == [[2, 3]] and review.comment == "sky, not car"
    assert query_next(project=project, user=people["second"]).image.original_name == "b.png"
    with pytest.raises(QueryLocked, match="sent back to annotator"):
        query_claim(query=query, user=people["second"])
    assert query_next(project=project, user=people["annotator"]).pk == query.pk
    # The round did not close under the rejected query.
    assert Round.objects.get(pk=labeling_round.pk).state == Round.State.LABELING
    second = submit(query, people["annotator"], mask_of(2), base=first.version).annotation
    again = Review.objects.get(annotation=second)
    assert again.reason == Review.Reason.RESUBMITTED  # always, though only 1 % is sampled
    query.refresh_from_db()
    assert query.returned_to is None
    review_accept(review=again, user=people["reviewer"])
    assert latest_labels(project)[query.image_id] == second


def test_a_fix_is_a_new_version_by_the_reviewer_and_trains(project, people, labeling_round):
    configure(project, review_mode=Project.ReviewMode.ALL, training_source=Project.TrainingSource.ACCEPTED)
    query = pool_query(labeling_round, project)
    submitted = submit(query, people["annotator"], mask_of(1)).annotation
    fixed = mask_of(1)
    fixed[:, :3] = 2
    review = review_fix(review=Review.objects.get(), user=people["reviewer"], mask_png=encode_png(fixed),
                        base_version=submitted.version, comment="left edge is sky")
    assert review.state == Review.State.FIXED
    label = latest_labels(project)[query.image_id]
    assert label == review.fix and label.author == people["reviewer"] and label.origin == "review"
    assert label.parent == submitted and label.version == submitted.version + 1
    np.testing.assert_array_equal(stored(label), fixed)


def test_sampling_reviews_about_the_share_asked_and_the_same_queries_each_time(project, people, labeling_round):
    from annotator.services.review import review_reason

    configure(project, review_mode=Project.ReviewMode.SAMPLE, review_sample_percent=30)
    queries = [pool_query(labeling_round, project, name=f"q{i}.png") for i in range(80)]
    picked = [review_reason(project=project, query=q, resubmitted=False) is not None for q in queries]
    assert 10 <= sum(picked) <= 38
    assert picked == [review_reason(project=project, query=q, resubmitted=False) is not None for q in queries]
    configure(project, review_sample_percent=100)
    assert all(review_reason(project=project, query=q, resubmitted=False) == "sample" for q in queries)


# --- Round closing ------------------------------------------------------------------------------------------------


def test_the_round_waits_for_its_reviews_when_the_project_asks(project, people, labeling_round):
    configure(project, review_mode=Project.ReviewMode.ALL, review_blocks_round=True)
    query = pool_query(labeling_round, project)
    result = submit(query, people["annotator"], mask_of(1))
    assert result.next_round is None
    assert Round.objects.get(pk=labeling_round.pk).state == Round.State.LABELING
    review_accept(review=Review.objects.get(), user=people["reviewer"])
    assert Round.objects.get(pk=labeling_round.pk).state == Round.State.CLOSED
    assert project.rounds.filter(number=1, state=Round.State.TRAINING).exists()


def test_without_the_wait_the_round_closes_on_the_last_submit_and_a_late_rejection_only_blocks_training(
        project, people, labeling_round):
    configure(project, review_mode=Project.ReviewMode.ALL, review_blocks_round=False)
    query = pool_query(labeling_round, project)
    assert submit(query, people["annotator"], mask_of(1)).next_round.number == 1
    review_reject(review=Review.objects.get(), user=people["reviewer"], comment="wrong")
    query.refresh_from_db()
    assert query.status == Query.Status.SUBMITTED and query.returned_to is None  # nothing to fix in a closed round
    assert latest_labels(project) == {}


# --- Who may, and conflicts ----------------------------------------------------------------------------------


def test_only_leads_and_reviewers_review_and_nobody_their_own_mask(project, people, labeling_round):
    configure(project, review_mode=Project.ReviewMode.ALL)
    query = pool_query(labeling_round, project)
    submit(query, people["reviewer"], mask_of(1))
    review = Review.objects.get()
    with pytest.raises(PermissionDenied, match="own mask"):
        review_accept(review=review, user=people["reviewer"])
    with pytest.raises(PermissionDenied, match="leads and reviewers"):
        review_accept(review=review, user=people["second"])
    assert review_accept(review=review, user=people["lead"]).state == Review.State.ACCEPTED


def test_a_decided_review_cannot_be_decided_again(project, people, labeling_round):
    configure(project, review_mode=Project.ReviewMode.ALL)
    submitted = submit(pool_query(labeling_round, project), people["annotator"], mask_of(1)).annotation
    review = Review.objects.get()
    review_accept(review=review, user=people["reviewer"])
    with pytest.raises(Conflict, match="accepted by reviewer already"):
        review_reject(review=review, user=people["lead"], comment="late")
    with pytest.raises(Conflict):
        review_fix(review=review, user=people["lead"], mask_png=encode_png(mask_of(2)), base_version=submitted.version)
    assert Annotation.objects.count() == 1


def test_a_reject_needs_a_comment_and_marks_inside_the_image(project, people, labeling_round):
    configure(project, review_mode=Project.ReviewMode.ALL)
    submit(pool_query(labeling_round, project), people["annotator"], mask_of(1))
    review = Review.objects.get()
    with pytest.raises(ServiceError, match="Say what is wrong"):
        review_reject(review=review, user=people["reviewer"], comment="  ")
    with pytest.raises(ServiceError, match="outside"):
        review_reject(review=review, user=people["reviewer"], comment="x", marks=[[W, 0]])
    assert Review.objects.get().state == Review.State.PENDING


def test_reviewer_and_annotator_on_one_query_conflict_and_nothing_is_lost(project, people, labeling_round):
    configure(project, review_mode=Project.ReviewMode.ALL)
    query = pool_query(labeling_round, project)
    submitted = submit(query, people["annotator"], mask_of(1)).annotation
    review = Review.objects.get()
    # The annotator's stale tab cannot change a query under review.
    with pytest.raises(Conflict, match="submitted already"):
        annotation_save(query=query, user=people["annotator"], mask_png=encode_png(mask_of(2)),
                        base_version=submitted.version)
    # Rejected: the annotator works on it again and saves a draft; the reviewer's stale fix is refused.
    review_reject(review=review, user=people["reviewer"], comment="redo")
    draft = annotation_save(query=query, user=people["annotator"], mask_png=encode_png(mask_of(0)),
                            base_version=submitted.version).annotation
    with pytest.raises(Conflict):
        review_fix(review=review, user=people["lead"], mask_png=encode_png(mask_of(2)),
                   base_version=submitted.version)
    versions = list(Annotation.objects.order_by("version").values_list("version", "author__username"))
    assert versions == [(submitted.version, "annotator"), (draft.version, "annotator")]


def test_a_fix_from_a_stale_version_is_refused(project, people, labeling_round):
    configure(project, review_mode=Project.ReviewMode.ALL)
    query = pool_query(labeling_round, project)
    submitted = submit(query, people["annotator"], mask_of(1)).annotation
    with pytest.raises(StaleVersion) as info:
        review_fix(review=Review.objects.get(), user=people["reviewer"], mask_png=encode_png(mask_of(2)),
                   base_version=submitted.version - 1)
    assert info.value.latest == submitted
    assert Review.objects.get().state == Review.State.PENDING and Annotation.objects.count() == 1


# --- Agreement: two annotators end to end --------------------------------------------------------------------


@pytest.fixture
def pair_round(project):
    """A selecting round with one query and its suggestion, opened with every query labeled twice."""
    configure(project, agreement_percent=100, agreement_threshold=0.8, training_source="accepted")
    round_ = make_round(project, number=0, state=Round.State.SELECTING)
    query = pool_query(round_, project)
    suggestion = mask_of(V)
    suggestion[:, :4] = 0
    make_suggestion(query, suggestion, np.full((H, W), 0.9))
    round_open(round_=round_)
    return round_


def test_opening_a_round_gives_the_share_of_queries_a_second_copy_with_the_suggestion(project, pair_round):
    first, replica = Query.objects.filter(round=pair_round).order_by("pk")
    assert replica.replica_of == first and first.replica_of is None
    assert (replica.image, replica.pixels, replica.kind) == (first.image, first.pixels, first.kind)
    assert replica.suggestions.get().mask.name == first.suggestions.get().mask.name
    assert Round.objects.get(pk=pair_round.pk).budget_planned_pixels == first.pixels  # the copy is not budget


def test_the_two_copies_go_to_two_people_who_do_not_see_each_other(project, people, pair_round):
    mine = query_next(project=project, user=people["annotator"])
    draft = annotation_save(query=mine, user=people["annotator"], mask_png=encode_png(mask_of(1)),
                            base_version=0).annotation
    theirs = query_next(project=project, user=people["second"])
    assert theirs is not None and theirs.pk != mine.pk
    assert query_latest_annotation(query=theirs) is None  # the first annotator's draft stays hidden
    assert query_latest_annotation(query=mine) == draft
    query_claim(query=mine, user=people["annotator"])
    with pytest.raises(PermissionDenied, match="other copy"):
        query_claim(query=theirs, user=people["annotator"])
    # Nobody's draft trains, and neither submission alone does.
    annotation_save(query=mine, user=people["annotator"], mask_png=encode_png(mask_of(1)),
                    base_version=draft.version, submit=True)
    configure(project, training_source="not_rejected")
    assert latest_labels(project) == {}


def label_pair(project, people, a: np.ndarray, b: np.ndarray):
    first, replica = Query.objects.filter(round__project=project).order_by("pk")
    submit(first, people["annotator"], a, base=0)
    submit(replica, people["second"], b, base=0)
    return first, replica


def test_a_pair_that_agrees_merges_and_the_merge_trains_unreviewed(project, people, pair_round):
    a, b = mask_of(1), mask_of(1)
    a[0, :4] = b[0, :4] = 0  # the two annotators paint the same mask
    first, _ = label_pair(project, people, a, b)
    agreement = Agreement.objects.get()
    assert agreement.passed and agreement.score == pytest.approx(1.0) and agreement.boundary_f == pytest.approx(1.0)
    assert agreement.per_class_iou == {"0": 1.0, "1": 1.0, "2": None}
    assert not Review.objects.exists()
    label = latest_labels(project)[first.image_id]
    assert label == agreement.merged and label.origin == "merge"
    np.testing.assert_array_equal(stored(label), a)
    assert Round.objects.get(pk=pair_round.pk).state == Round.State.CLOSED


def test_a_pair_below_the_threshold_goes_to_review_with_disputed_pixels_void(project, people, pair_round):
    a, b = mask_of(1), mask_of(1)
    a[:, :2] = 0  # 12 pixels class 0 in A
    b[:, :4] = 0  # 24 pixels class 0 in B: class 0 IoU 12/24 = 0.5, class 1 IoU 24/36 → mIoU 0.583
    first, replica = label_pair(project, people, a, b)
    agreement = Agreement.objects.get()
    assert not agreement.passed
    assert agreement.score == pytest.approx((0.5 + 24 / 36) / 2)
    assert agreement.per_class_iou["0"] == pytest.approx(0.5)
    review = Review.objects.get()
    assert (review.reason, review.annotation, review.agreement) == ("disagreement", agreement.merged, agreement)
    expected = mask_of(1)
    expected[:, :2] = 0
    expected[:, 2:4] = V
    np.testing.assert_array_equal(stored(agreement.merged), expected)
    assert latest_labels(project) == {}  # accepted only: nothing of the pair trains before the review
    assert Round.objects.get(pk=pair_round.pk).state == Round.State.LABELING
    review_accept(review=review, user=people["reviewer"])
    np.testing.assert_array_equal(stored(latest_labels(project)[first.image_id]), expected)
    assert Round.objects.get(pk=pair_round.pk).state == Round.State.CLOSED
    summary = review_summary(project=project)
    assert summary.agreement_pairs == 1 and summary.agreement_passed == 0
    assert {a.username: a.mean_iou for a in summary.agreement_annotators} == {
        "annotator": pytest.approx(agreement.score), "second": pytest.approx(agreement.score)}
    assert {c.name: c.mean_iou for c in summary.agreement_classes} == {
        "road": pytest.approx(0.5), "car": pytest.approx(24 / 36)}


def test_rejecting_a_pair_sends_each_copy_back_to_its_own_annotator(project, people, pair_round):
    a, b = mask_of(1), mask_of(0)
    first, replica = label_pair(project, people, a, b)
    review_reject(review=Review.objects.get(), user=people["reviewer"], comment="road or car? look again")
    first.refresh_from_db()
    replica.refresh_from_db()
    assert (first.status, first.returned_to) == ("pending", people["annotator"])
    assert (replica.status, replica.returned_to) == ("pending", people["second"])
    submit(first, people["annotator"], mask_of(1))
    submit(replica, people["second"], mask_of(1))
    newest = Agreement.objects.order_by("-pk").first()
    assert Agreement.objects.count() == 2 and newest.passed
    assert latest_labels(project)[first.image_id] == newest.merged


# --- API and pages ---------------------------------------------------------------------------------------------


@pytest.fixture
def clients(people):
    from rest_framework.test import APIClient

    def client_for(name):
        client = APIClient()
        client.force_login(people[name])
        return client

    return client_for


def test_the_api_lists_decides_and_answers_409_for_a_second_decision(project, people, labeling_round, clients):
    configure(project, review_mode=Project.ReviewMode.ALL)
    query = pool_query(labeling_round, project)
    submitted = submit(query, people["annotator"], mask_of(1)).annotation
    review = Review.objects.get()
    reviewer = clients("reviewer")
    listed = reviewer.get(reverse("review-list", args=[project.pk])).json()
    assert [r["id"] for r in listed] == [review.pk]
    detail = reviewer.get(reverse("review-detail", args=[review.pk])).json()
    assert detail["annotators"][0]["username"] == "annotator" and detail["base_version"] == submitted.version
    assert detail["image"]["url"] == reverse("labeling-query-image", args=[query.pk])
    assert clients("annotator").get(reverse("review-list", args=[project.pk])).status_code == 403
    assert clients("outsider").get(reverse("review-detail", args=[review.pk])).status_code in (403, 404)
    assert reviewer.post(reverse("review-reject", args=[review.pk]), {}, format="json").status_code == 400
    answer = reviewer.post(reverse("review-reject", args=[review.pk]), {"comment": "no", "marks": [[1, 1]]},
                           format="json")
    assert answer.status_code == 200 and answer.json()["state"] == "rejected"
    again = clients("lead").post(reverse("review-accept", args=[review.pk]), {}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    summary = reviewer.get(reverse("review-summary", args=[project.pk])).json()
    assert summary["annotators"][0]["rejected"] == 1 and summary["waiting"] == 0


def test_the_api_fix_takes_a_png_and_refuses_a_stale_base_with_409(project, people, labeling_round, clients):
    configure(project, review_mode=Project.ReviewMode.ALL)
    submitted = submit(pool_query(labeling_round, project), people["annotator"], mask_of(1)).annotation
    review = Review.objects.get()
    url = reverse("review-fix", args=[review.pk])
    stale = clients("reviewer").post(f"{url}?base_version={submitted.version - 1}", encode_png(mask_of(2)),
                                     content_type="image/png")
    assert stale.status_code == 409 and stale.json()["code"] == "stale_version"
    done = clients("reviewer").post(f"{url}?base_version={submitted.version}&comment=better",
                                    encode_png(mask_of(2)), content_type="image/png")
    assert done.status_code == 201 and done.json()["state"] == "fixed" and done.json()["fix"]["author"] == "reviewer"


def test_pages_show_the_queue_the_review_the_rejection_and_the_dashboard_panel(project, people, labeling_round,
                                                                              client):
    configure(project, review_mode=Project.ReviewMode.ALL)
    query = pool_query(labeling_round, project)
    submit(query, people["annotator"], mask_of(1))
    review = Review.objects.get()
    client.force_login(people["reviewer"])
    page = client.get(reverse("review-queue-page", args=[project.pk])).content.decode()
    assert "a.png" in page and reverse("review-page", args=[project.pk, review.pk]) in page
    assert "review-data" in client.get(reverse("review-page", args=[project.pk, review.pk])).content.decode()
    review_reject(review=review, user=people["reviewer"], comment="The car's wheels are road.")
    client.force_login(people["annotator"])
    assert client.get(reverse("review-queue-page", args=[project.pk])).status_code == 403
    assert "wheels are road" in client.get(reverse("labeling-queue-page", args=[project.pk])).content.decode()
    label_page = client.get(reverse("labeling-page", args=[project.pk, query.pk])).content.decode()
    assert "rejection-note" in label_page and "wheels are road" in label_page
    client.force_login(people["lead"])
    dashboard = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    assert 'id="review-panel"' in dashboard and "review-acceptance" in dashboard
