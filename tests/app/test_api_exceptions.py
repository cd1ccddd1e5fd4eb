"""The API's one exception handler: service refusals become 400 / 403 / 409 with their sentence."""
import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework.test import APIClient

from annotator.api.exceptions import exception_handler
from annotator.services.errors import Conflict, PermissionDenied, ServiceError
from annotator.services.labeling import InvalidMask, QueryLocked


@pytest.mark.parametrize("error, status, code", [
    (ServiceError("round 2 is training, not labeling"), 400, "invalid"),
    (InvalidMask("the mask is 10x10, the image 64x48"), 400, "invalid_mask"),
    (PermissionDenied("only leads may do that"), 403, "permission_denied"),
    (Conflict("stale"), 409, "conflict"),
    (QueryLocked("someone else holds it"), 409, "locked"),
])
def test_service_errors_answer_with_their_sentence(error, status, code):
    response = exception_handler(error, {})
    assert response.status_code == status
    assert response.data == {"detail": str(error), "code": code}


@pytest.mark.parametrize("error, status", [
    (Http404("no such job"), 404),
    (DjangoPermissionDenied("no"), 403),
    (DjangoValidationError({"color": ["Use a hex colour like #1f77b4."]}), 400),
])
def test_django_errors_keep_their_http_meaning(error, status):
    response = exception_handler(error, {})
    assert response.status_code == status


@pytest.mark.parametrize("error", [
    OperationalError("connection to server at 127.0.0.1 failed: Connection refused"),
    InterfaceError("connection already closed"),
])
def test_a_database_out_of_reach_is_a_503_to_retry(error):
    response = exception_handler(error, {})
    assert (response.status_code, response.data["code"], response["Retry-After"]) == (503, "database_unavailable", "5")


def test_anything_else_is_left_to_django():
    assert exception_handler(RuntimeError("bug"), {}) is None


def test_the_setting_points_at_the_handler(settings):
    assert settings.REST_FRAMEWORK["EXCEPTION_HANDLER"] == "annotator.api.exceptions.exception_handler"


@pytest.mark.django_db
def test_through_the_api_a_refusal_is_a_400_and_an_unknown_row_a_404(project, users):
    client = APIClient()
    client.force_login(users["lead"])
    refused = client.post(f"/api/projects/{project.pk}/start/")  # no images yet
    assert refused.status_code == 400 and refused.json()["code"] == "invalid"
    assert "cannot start yet" in refused.json()["detail"]
    assert client.post("/api/jobs/999999/cancel/").status_code == 404
