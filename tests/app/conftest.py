"""Fixtures shared by the app tests of imports: a logged-in lead's API client, tasks run in-process."""
import pytest
from rest_framework.test import APIClient


@pytest.fixture
def lead(users):
    client = APIClient()
    client.force_login(users["lead"])
    return client


@pytest.fixture
def eager_tasks():
    """Tasks run in-process when the view's transaction commits (a real worker is the round loop's tests' job)."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False
