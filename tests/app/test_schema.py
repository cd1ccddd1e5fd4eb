"""The OpenAPI schema at /api/schema/ is valid OpenAPI 3 and describes every lead resource without guesswork."""
import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

LEAD_PATHS = [
    "/api/projects/", "/api/projects/{id}/", "/api/projects/{id}/classes/", "/api/projects/{id}/members/",
    "/api/projects/{id}/members/{user_id}/", "/api/projects/{id}/readiness/", "/api/projects/{id}/start/",
    "/api/projects/{id}/metrics/", "/api/projects/{id}/images/split/", "/api/projects/{id}/imports/",
    "/api/projects/{id}/exports/", "/api/images/", "/api/rounds/{id}/close/", "/api/queries/", "/api/annotations/",
    "/api/annotations/{id}/mask/", "/api/suggestions/", "/api/model-versions/{id}/download/", "/api/jobs/",
    "/api/jobs/{id}/cancel/", "/api/jobs/{id}/retry/", "/api/jobs/{id}/download/", "/api/auth/token/",
]


@pytest.fixture
def schema():
    GENERATOR_STATS.reset()
    generated = SchemaGenerator().get_schema(request=None, public=True)
    yield generated
    GENERATOR_STATS.reset()


def test_schema_validates_against_the_openapi_specification(schema):
    validate_schema(schema)  # raises on any violation
    assert set(LEAD_PATHS) <= set(schema["paths"])


def test_every_view_generates_without_warnings_or_errors(schema):
    assert [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache] == []


def test_ids_are_integers_and_filters_are_documented(schema):
    detail = schema["paths"]["/api/projects/{id}/"]["get"]
    assert next(p for p in detail["parameters"] if p["name"] == "id")["schema"]["type"] == "integer"
    jobs = {p["name"]: p for p in schema["paths"]["/api/jobs/"]["get"]["parameters"]}
    assert {"project", "state", "kind", "active", "page", "page_size", "ordering"} <= set(jobs)
    assert jobs["state"]["schema"]["enum"] == ["queued", "running", "succeeded", "failed", "cancelled"]
    metrics = schema["paths"]["/api/projects/{id}/metrics/"]["get"]["responses"]["200"]
    assert metrics["content"]["application/json"]["schema"]["$ref"].endswith("/ProjectMetrics")


def test_schema_and_docs_are_served(client, users):
    client.force_login(users["lead"])
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
