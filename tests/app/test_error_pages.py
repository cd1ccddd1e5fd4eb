"""Refused and failed requests get the app's own pages (with the way back), and the app serves its favicon."""
import pytest
from django.contrib.staticfiles import finders
from django.template import loader
from django.urls import reverse

pytestmark = pytest.mark.django_db


def assert_styled_with_way_back(html: str) -> None:
    assert 'href="/static/frontend/base.css"' in html  # extends the base layout
    assert 'class="brand" href="/"' in html and "Back to my projects" in html
    assert 'rel="icon"' in html


def test_a_forbidden_lead_page_says_why_on_a_styled_page(client, users, project):
    client.force_login(users["annotator"])
    response = client.get(reverse("project-dashboard", args=[project.pk]))
    assert response.status_code == 403
    html = response.content.decode()
    assert_styled_with_way_back(html)
    assert "Only the project&#x27;s leads can open this page." in html
    assert "Traceback" not in html


def test_an_unknown_page_is_a_styled_404(client, users, project):
    client.force_login(users["outsider"])
    for path in ("/no/such/page/", reverse("project-dashboard", args=[project.pk])):
        response = client.get(path)
        assert response.status_code == 404
        html = response.content.decode()
        assert_styled_with_way_back(html)
        assert "Streets" not in html  # an outsider does not learn the project's name


def test_the_500_page_renders_without_a_request():
    html = loader.get_template("500.html").render()  # what Django's server_error view does
    assert_styled_with_way_back(html)
    assert "Something went wrong" in html and 'href="/login/"' in html  # no user: offered the log-in


def test_a_stale_form_gets_the_styled_csrf_page(users):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(users["lead"])
    response = client.post(reverse("project-create"), {"name": "x"})
    assert response.status_code == 403
    html = response.content.decode()
    assert_styled_with_way_back(html)
    assert "This form is out of date" in html


def test_the_favicon_is_a_static_file_linked_from_every_page(client, users):
    assert finders.find("frontend/favicon.svg")
    client.force_login(users["lead"])
    assert '<link rel="icon" href="/static/frontend/favicon.svg"' in client.get("/").content.decode()
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/frontend/favicon.svg"
