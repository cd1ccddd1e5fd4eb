"""Fixtures shared by the app tests of imports: a logged-in lead's API client, tasks run in-process."""
import pytest
from rest_framework.test import APIClient


@pytest.fixture
def lead(users):
    client = APIClient()
    client.force_login(users["lead"])
    return client


@pytest.fixture
def as_user(users):
    """``as_user(name)``: an API client logged in as one of ``users`` (lead, annotator, outsider, admin)."""

    def client_for(name: str) -> APIClient:
        client = APIClient()
        client.force_login(users[name])
        return client

    return client_for


@pytest.fixture
def eager_tasks():
    """Tasks run in-process when the view's transaction commits (a real worker is the round loop's tests' job)."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False
