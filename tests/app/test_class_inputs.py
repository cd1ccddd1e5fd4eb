"""Class lists from the web form and the API: bad input is a sentence, never a 500; both fill in the same defaults."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.models import Project
from annotator.services.errors import ServiceError
from annotator.services.projects import ClassSpec, project_set_classes

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead_client(client, users):
    client.force_login(users["lead"])
    return client


@pytest.mark.parametrize("classes, message", [
    ("road #zzz\ncar", "Line 1: &#x27;#zzz&#x27; is not a colour like #1f77b4"),
    ("road\ncar #12345", "Line 2: &#x27;#12345&#x27; is not a colour like #1f77b4"),
    ("#00ff00\ncar", "Line 1: a class needs a name before its colour"),
])
def test_a_bad_class_line_is_a_form_error_not_a_crash(lead_client, classes, message):
    response = lead_client.post(reverse("project-create"), {"name": "Harbour", "classes": classes})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Project.objects.filter(name="Harbour").exists()


def test_a_class_the_model_refuses_is_a_form_error_too(lead_client):
    response = lead_client.post(reverse("project-create"), {"name": "Harbour", "classes": "x" * 65 + "\ncar"})
    assert response.status_code == 200
    assert "class 0" in response.content.decode() and "at most 64 characters" in response.content.decode()
    assert not Project.objects.filter(name="Harbour").exists()  # the project was not half-created


def test_the_classes_page_refuses_a_bad_colour_with_a_sentence(lead_client, project):
    data = {"classes-TOTAL_FORMS": "2", "classes-INITIAL_FORMS": "2",
            "classes-0-name": "road", "classes-0-color": "#zzz", "classes-0-hotkey": "1",
            "classes-1-name": "car", "classes-1-color": "#400080", "classes-1-hotkey": "2"}
    response = lead_client.post(reverse("project-classes", args=[project.pk]), data)
    assert response.status_code == 200
    assert "Use a hex colour like #1f77b4." in response.content.decode()
    assert list(project.classes.values_list("name", flat=True)) == ["road", "car", "sky"]


def test_the_service_refuses_a_bad_colour_with_a_service_error(project):
    with pytest.raises(ServiceError, match="class 1 .*'car'.*color"):
        project_set_classes(project=project, classes=[ClassSpec(0, "road", "#000000"), ClassSpec(1, "car", "#zzz")])


def test_the_api_refuses_a_bad_colour_with_400(users):
    api = APIClient()
    api.force_login(users["lead"])
    response = api.post("/api/projects/", {"name": "Harbour", "classes": [{"name": "road", "color": "#zzz"},
                                                                          {"name": "car"}]}, format="json")
    assert response.status_code == 400 and "hex colour" in str(response.json())
    assert not Project.objects.filter(name="Harbour").exists()


def test_the_api_fills_in_index_colour_and_hotkey_like_the_web_form(users, lead_client):
    lead_client.post(reverse("project-create"), {"name": "Web", "classes": "water #0000ff\nboat\nsky"})
    api = APIClient()
    api.force_login(users["lead"])
    response = api.post("/api/projects/", {"name": "Api", "classes": [
        {"name": "water", "color": "#0000ff"}, {"name": "boat"}, {"name": "sky"}]}, format="json")
    assert response.status_code == 201, response.content
    web = list(Project.objects.get(name="Web").classes.values_list("index", "name", "color", "hotkey"))
    made = list(Project.objects.get(name="Api").classes.values_list("index", "name", "color", "hotkey"))
    assert made == web == [(0, "water", "#0000ff", "1"), (1, "boat", "#ff7f0e", "2"), (2, "sky", "#2ca02c", "3")]
    assert response.json()["classes"][1] == {"index": 1, "name": "boat", "color": "#ff7f0e", "hotkey": "2"}


def test_the_api_keeps_what_a_client_does_give(project, users):
    api = APIClient()
    api.force_login(users["lead"])
    response = api.put(f"/api/projects/{project.pk}/classes/", [
        {"name": "sky", "index": 1, "hotkey": ""}, {"name": "road", "index": 0, "color": "#111111", "hotkey": "r"}],
        format="json")
    assert response.status_code == 200, response.content
    assert response.json() == [{"index": 0, "name": "road", "color": "#111111", "hotkey": "r"},
                               {"index": 1, "name": "sky", "color": "#ff7f0e", "hotkey": ""}]
