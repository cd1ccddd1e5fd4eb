"""Small things a newcomer reads: the admin's names, the hint to start a draft project."""
import pytest
from django.urls import reverse

from annotator.models import Project

pytestmark = pytest.mark.django_db


def test_the_admin_says_label_classes(client, users):
    client.force_login(users["admin"])
    html = client.get("/admin/").content.decode()
    assert "Label classes" in html and "Label classs" not in html


@pytest.mark.parametrize("page", ["project-settings", "project-classes", "project-images", "project-members"])
def test_a_draft_project_says_how_to_start_it_on_every_page(project, client, users, page):
    client.force_login(users["lead"])
    html = client.get(reverse(page, args=[project.pk])).content.decode()
    hint = html[html.index('id="draft-hint"'):][:400]
    assert "This project is a draft" in hint and f'href="{reverse("project-dashboard", args=[project.pk])}"' in hint


def test_a_started_project_shows_no_draft_hint(project, client, users):
    Project.objects.filter(pk=project.pk).update(state=Project.State.ACTIVE)
    client.force_login(users["lead"])
    assert 'id="draft-hint"' not in client.get(reverse("project-settings", args=[project.pk])).content.decode()


def test_staff_archive_and_delete_projects_in_the_admin_through_the_services(project, client, users,
                                                                            django_capture_on_commit_callbacks):
    import numpy as np

    from tests.factories import make_annotation, make_image, make_query, make_round

    query = make_query(make_round(project, number=0), make_image(project))
    for _ in range(2):  # a version and its parent: the delete must not stop at the parent link
        make_annotation(query, np.zeros((48, 64), np.uint8))
    client.force_login(users["admin"])
    changelist = reverse("admin:annotator_project_changelist")
    client.post(changelist, {"action": "archive_projects", "_selected_action": [project.pk]})
    project.refresh_from_db()
    assert project.archived_at is not None
    delete = reverse("admin:annotator_project_delete", args=[project.pk])
    assert "Yes, I’m sure" in client.get(delete).content.decode()  # the confirmation page, not a refusal
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(delete, {"post": "yes"}).status_code == 302
    assert not Project.objects.filter(pk=project.pk).exists()
