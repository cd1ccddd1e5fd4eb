"""Saves and submits at the same moment, through the API, on separate database connections (threads).

Each test releases its requests together at a barrier. On SQLite the writers
queue for the one write lock (BEGIN IMMEDIATE, busy timeout); on PostgreSQL
(tests/integration/test_concurrency_postgres.py runs these again) row locks
decide. Either way one request wins and the others get a 409 they can act on:
no version is lost, none is stored twice, no file is left without its row.
"""
from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.imaging import encode_png
from annotator.models import Annotation, Job, Membership, Round
from annotator.services.projects import membership_set
from tests.factories import make_image, make_query, make_round

pytestmark = pytest.mark.django_db(transaction=True)

W, H = 48, 36
PARALLEL = 20


def in_parallel(calls) -> list:
    """Run the calls in threads released together; their results (or exceptions) in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except Exception as exc:  # reported by the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def save_call(user, query, value: int, *, base_version: int = 0, submit: bool = False):
    url = reverse("labeling-query-submit" if submit else "labeling-query-save", args=[query.pk])
    png = encode_png(np.full((H, W), value, np.uint8))

    def call():
        client = APIClient()
        client.force_authenticate(user)
        response = client.post(f"{url}?base_version={base_version}", data=png, content_type="image/png")
        return response.status_code, response.json()
    return call


def annotation_files() -> list[Path]:
    return sorted(path for path in Path(settings.MEDIA_ROOT).rglob("*.png") if "annotations" in path.parts)


@pytest.fixture
def round_(project):
    return make_round(project, number=0, state=Round.State.LABELING)


@pytest.fixture
def annotators(users, django_user_model, project):
    people = [users["annotator"]]
    for i in range(PARALLEL - 1):
        user = django_user_model.objects.create_user(f"annotator{i}", password="pw")
        membership_set(project=project, user=user, role=Membership.Role.ANNOTATOR)
        people.append(user)
    return people


def test_twenty_saves_from_one_version_store_one_and_answer_409_stale_to_the_rest(project, users, round_):
    """One annotator, twenty tabs, all started from version 0."""
    query = make_query(round_, make_image(project, size=(W, H)))
    results = in_parallel([save_call(users["annotator"], query, i % 3) for i in range(PARALLEL)])
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 1, 409: PARALLEL - 1}, results
    assert {body["code"] for status, body in results if status == 409} == {"stale_version"}
    assert {body["latest"]["version"] for status, body in results if status == 409} == {1}
    (stored,) = Annotation.objects.filter(image=query.image)
    assert stored.version == 1 and annotation_files() == [Path(stored.mask.path)]


def test_twenty_annotators_saving_one_query_get_one_lock_and_nineteen_409s(project, round_, annotators):
    query = make_query(round_, make_image(project, size=(W, H)))
    results = in_parallel([save_call(user, query, 1) for user in annotators])
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 1, 409: PARALLEL - 1}, results
    # A loser either found the lock taken or, on PostgreSQL, waited on the row and then found version 1.
    assert {body["code"] for status, body in results if status == 409} <= {"locked", "stale_version"}
    query.refresh_from_db()
    (stored,) = Annotation.objects.filter(image=query.image)
    assert query.assignee_id == stored.author_id and len(annotation_files()) == 1


def test_the_last_two_submits_at_once_close_the_round_once(project, round_, annotators):
    first, second = (make_query(round_, make_image(project, size=(W, H))) for _ in range(2))
    results = in_parallel([save_call(annotators[0], first, 1, submit=True),
                           save_call(annotators[1], second, 2, submit=True)])
    assert [status for status, _ in results] == [201, 201], results
    assert sorted(str(body["next_round"]) for _, body in results) == ["1", "None"]
    assert list(project.rounds.order_by("number").values_list("number", "state")) == [(0, "closed"), (1, "training")]
    assert Job.objects.filter(round__number=1).count() == 1
