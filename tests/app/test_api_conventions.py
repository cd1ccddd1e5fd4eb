"""API conventions a client relies on: 401 + WWW-Authenticate without credentials, round numbers, offline docs."""
import re

import pytest
from django.contrib.staticfiles import finders
from rest_framework.test import APIClient

from tests.factories import make_image, make_query, make_round

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/projects/", "/api/jobs/", "/api/labeling/projects/1/queue/"])
def test_requests_without_credentials_get_401_and_are_told_how_to_authenticate(path):
    response = APIClient().get(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "credentials were not provided" in response.json()["detail"]


def test_a_wrong_token_is_401_and_a_good_one_or_a_session_works(users):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get("/api/projects/").status_code == 401
    token = APIClient().post("/api/auth/token/", {"username": "lead", "password": "pw-lead"}).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/projects/").status_code == 200
    session = APIClient()
    session.force_login(users["lead"])
    assert session.get("/api/projects/").status_code == 200


def test_queries_carry_their_round_number_beside_its_id(project, users):
    make_round(project, number=0, state="closed")
    round1 = make_round(project, number=1)
    query = make_query(round1, make_image(project))
    client = APIClient()
    client.force_login(users["annotator"])
    body = client.get(f"/api/queries/{query.pk}/").json()
    assert (body["round"], body["round_number"]) == (round1.pk, 1)
    listed = client.get("/api/queries/", {"round_number": 1}).json()["results"]
    assert [q["id"] for q in listed] == [query.pk]
    assert client.get("/api/queries/", {"round_number": 0}).json()["results"] == []


def test_the_api_docs_work_offline(client):
    html = client.get("/api/docs/").content.decode()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page loads something from another host"
    assets = re.findall(r"""(?:src|href)=["']?/static/([^"'\s>]+)""", html)
    assert any("swagger-ui" in asset and asset.endswith(".js") for asset in assets)
    for asset in assets:
        assert finders.find(asset), f"{asset} is not among the app's static files"
    script = client.get("/api/docs/?script=").content.decode()  # the split view's start-up script
    assert "SwaggerUIBundle" in script and "//cdn" not in script and "unpkg" not in script
