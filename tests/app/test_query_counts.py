"""The database at scale: list endpoints and lead pages issue a bounded number of queries.

A project of 2,000 pool images (rows made with bulk_create; no files are
read by these views) with three rounds of queries, annotations, suggestions
and jobs. Every list must cost the same number of queries whatever its page
size and however many rows the project holds: no per-row query (N+1).
"""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.models import Query
from tests.factories import add_rows

pytestmark = pytest.mark.django_db

POOL = 2000


@pytest.fixture
def large(project, users):
    add_rows(project, users, images=POOL)
    return project


@pytest.fixture
def lead_api(users):
    client = APIClient()
    client.force_login(users["lead"])
    return client


def queries_of(call) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = call()
    assert response.status_code == 200, getattr(response, "data", response)
    return len(captured)


LISTS = ["image-list", "query-list", "annotation-list", "suggestion-list", "round-list", "job-list",
         "modelversion-list"]


@pytest.mark.parametrize("name", LISTS)
def test_an_api_list_costs_the_same_queries_whatever_its_page_size(large, lead_api, name,
                                                                   django_assert_max_num_queries):
    url = reverse(name)
    small = queries_of(lambda: lead_api.get(url, {"project": large.pk, "page_size": 5}))
    with django_assert_max_num_queries(12):
        response = lead_api.get(url, {"project": large.pk, "page_size": 200})
    assert response.status_code == 200 and len(response.data["results"]) >= min(5, response.data["count"])
    assert queries_of(lambda: lead_api.get(url, {"project": large.pk, "page_size": 200})) == small


def page_queries(client, name, project, **params) -> int:
    return queries_of(lambda: client.get(reverse(name, args=[project.pk]), params))


PAGES = [("project-browse", {}), ("project-browse", {"status": "labeled"}), ("project-images", {}),
         ("project-images", {"split": "val"}), ("project-dashboard", {})]


@pytest.mark.parametrize("name,params", PAGES)
def test_a_lead_page_costs_the_same_queries_with_more_rows(large, users, client, name, params,
                                                           django_assert_max_num_queries):
    client.force_login(users["lead"])
    before = page_queries(client, name, large, **params)
    add_rows(large, users, images=500, start=POOL, rounds=2, queries_per_round=100)
    with django_assert_max_num_queries(60):
        response = client.get(reverse(name, args=[large.pk]), params)
    assert response.status_code == 200
    assert page_queries(client, name, large, **params) <= before + 2  # two more rounds may add a row each


def test_the_image_page_costs_the_same_queries_with_more_queries_of_the_image(large, users, client):
    client.force_login(users["lead"])
    image = Query.objects.filter(round__project=large).order_by("pk").first().image
    before = queries_of(lambda: client.get(reverse("project-image", args=[large.pk, image.pk])))
    round_ = large.rounds.order_by("-number").first()
    Query.objects.bulk_create([Query(round=round_, image=image, score=0.1, priority=1000 + i, pixels=10,
                                     region_key=f"r{i}", assignee=users["annotator"]) for i in range(20)])
    after = queries_of(lambda: client.get(reverse("project-image", args=[large.pk, image.pk])))
    assert after == before
