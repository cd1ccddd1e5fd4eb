"""An empty suggestion is not scored (n/a), never Dice 0; the round's median leaves n/a out; the page says so."""
import numpy as np
import pytest
from django.urls import reverse

from annotator.imaging import encode_png
from annotator.selectors import project_metrics
from annotator.services.labeling import annotation_save, mask_dice, query_claim
from tests.factories import make_image, make_model_version, make_query, make_round, make_suggestion

pytestmark = pytest.mark.django_db
W, H = 16, 12


def test_a_suggestion_with_nothing_in_the_region_scores_none():
    labeled = np.zeros((H, W), np.uint8)
    assert mask_dice(np.full((H, W), 255, np.uint8), labeled) is None
    outside_only = np.full((H, W), 255, np.uint8)
    outside_only[:, W // 2:] = 1
    region = np.zeros((H, W), bool)
    region[:, : W // 2] = True
    assert mask_dice(outside_only, labeled, region) is None  # suggested, but not where it was asked
    wrong = np.full((H, W), 1, np.uint8)
    assert mask_dice(wrong, labeled, region) == 0.0  # a suggestion that is all wrong still scores 0


def test_submitting_over_an_empty_suggestion_leaves_the_median_to_the_scored_ones(project, users):
    round_ = make_round(project, number=0, model_version=make_model_version(project))
    empty, good = (make_query(round_, make_image(project, size=(W, H))) for _ in range(2))
    make_suggestion(empty, np.full((H, W), 255, np.uint8), np.zeros((H, W)))
    make_suggestion(good, np.zeros((H, W), np.uint8), np.ones((H, W)))
    final = encode_png(np.zeros((H, W), np.uint8))
    for query in (empty, good):
        query_claim(query=query, user=users["annotator"])
        result = annotation_save(query=query, user=users["annotator"], mask_png=final, base_version=0, submit=True)
        assert result.annotation.suggestion_dice == (None if query == empty else 1.0)
    row = project_metrics(project=project).rounds[0]
    assert (row.suggestion_dice_median, row.suggestion_dice_count) == (1.0, 1)


def test_the_labeling_page_gets_told_the_suggestion_is_empty(client, project, users):
    round_ = make_round(project, number=0, model_version=make_model_version(project))
    query = make_query(round_, make_image(project, size=(W, H)))
    make_suggestion(query, np.full((H, W), 255, np.uint8), np.zeros((H, W)))
    client.force_login(users["annotator"])
    detail = client.get(reverse("labeling-query", args=[query.pk])).json()
    assert detail["suggestion"]["empty"] is True and detail["suggestion"]["coverage"] == 0.0
