"""Keep-best on the dashboard and in the API: both models shown with the reason; leads promote or roll back."""
from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from models_store.models import ModelVersion
from tests.factories import make_model_version, make_round

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_models(project):
    first = make_model_version(project, round_=make_round(project, number=0, state="closed"),
                               metrics={"miou": 0.41, "promotion": {"promote": True, "reason": "the project's first model"},
                                        "pretrained": {"kind": "none", "description": "random initialisation"},
                                        "batchnorm": {"mode": "auto", "chosen": "target", "images": 46,
                                                      "reason": "target statistics score 31.0 mIoU on target "
                                                                "validation against 23.9 mIoU as trained"}})
    second = make_model_version(project, round_=make_round(project, number=1, state="labeling"),
                                state=ModelVersion.State.REJECTED,
                                metrics={"miou": 0.22, "promotion": {"promote": False, "reason": "worse beyond noise: "
                                                                     "-19.0 mIoU points"}})
    return first, second


def client(users, name: str) -> APIClient:
    api = APIClient()
    api.force_login(users[name])
    return api


def test_the_dashboard_shows_both_models_with_the_reason_and_offers_to_promote(project, users, two_models):
    first, second = two_models
    page = client(users, "lead").get(reverse("project-dashboard", args=[project.pk])).content.decode()
    assert "worse beyond noise: -19.0 mIoU points" in page and "the project&#x27;s first model" in page
    assert "serving" in page and "Round 0 started from: <strong>random initialisation</strong>" in page
    assert "at most 1 mIoU point below the current one" in page  # the rule's cap, from learning.promotion
    # Which BatchNorm statistics a model kept, where they are the target pool's (learning.train.settle_statistics).
    assert page.count("BatchNorm statistics of the target pool: target statistics score 31.0 mIoU") == 1
    assert reverse("modelversion-promote", args=[project.pk, second.pk]) in page
    assert reverse("modelversion-promote", args=[project.pk, first.pk]) not in page  # it serves already


def test_a_lead_promotes_a_rejected_model_and_rolls_back_from_the_page(project, users, two_models):
    first, second = two_models
    lead = client(users, "lead")
    response = lead.post(reverse("modelversion-promote", args=[project.pk, second.pk]), follow=True)
    assert "Model v2 now serves suggestions" in response.content.decode()
    second.refresh_from_db()
    assert second.is_promoted and "promoted by hand by lead" in second.promotion_reason
    lead.post(reverse("modelversion-promote", args=[project.pk, first.pk]))
    second.refresh_from_db()
    assert not second.is_promoted and "rolled back to v1" in second.promotion_reason


def test_promoting_through_the_api_is_for_leads(project, users, two_models):
    _, second = two_models
    url = f"/api/model-versions/{second.pk}/promote/"
    assert client(users, "annotator").post(url).status_code == 403
    response = client(users, "lead").post(url)
    assert response.status_code == 200 and response.json()["state"] == "promoted"
    assert "promoted by hand" in response.json()["promotion_reason"]
