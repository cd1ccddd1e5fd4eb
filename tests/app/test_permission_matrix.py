"""The permission matrix: every role × every page, API endpoint and media URL, from one table.

The routes come from Django's URL resolver (everything but admin/, whose
index stands for it), so a new URL fails :func:`test_every_url_is_in_the_matrix`
until it is given a row here. Each row is a method and a path; each column
the status one role gets. Requests that change something run in a savepoint
that is rolled back, so every cell sees the same project: a lead of
"Streets" with an annotator, round 1 labeling, a model with real checkpoint
files, an export ready to download. The other lead leads "Harbour" only.

Beyond the status, no answer to someone outside the project may name it
(``Streets`` never appears in a body an outsider or the other lead gets).
docs/RELIABILITY.md quotes the size of this matrix; a test keeps them equal.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.test import APIClient
from rest_framework.views import APIView

from annotator.imaging import encode_png
from annotator.models import Job, Query, Review, Round
from annotator.services.exports import export_path
from annotator.services.projects import ClassSpec, project_create
from tests.factories import (
    make_annotation, make_image, make_job, make_model_version, make_query, make_round, make_suggestion,
)

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "outsider", "annotator", "lead", "other_lead", "staff")
W, H = 32, 24
RELIABILITY_MD = Path(__file__).resolve().parents[2] / "docs" / "RELIABILITY.md"

# Columns: anonymous, outsider (logged in, no project), annotator and lead of Streets, lead of another
# project, staff. Pages send anonymous users to /login/ (302) and hide the project from outsiders (404);
# lead pages refuse annotators (403). The API answers anonymous users 401, narrows lists to the user's
# projects (200, empty) and answers 404 for another project's rows; the labeling API answers 403 to
# non-members. 400 and 409 in a lead's cell: the request passed the permission check and the service
# refused it (the project has started; round 1 is labeling so there is no job to retry; a queued job keeps
# the project from being archived or deleted).
MATRIX = """
method  path                                                anon out ann lead olead staff
GET     /                                                   302 200 200 200  200   200
GET     /login/                                             200 200 200 200  200   200
POST    /login/                                             200 302 302 302  302   302
POST    /logout/                                            302 302 302 302  302   302
GET     /projects/new/                                      302 200 200 200  200   200
POST    /projects/new/                                      302 302 302 302  302   302
GET     /projects/{p}/queue/                                302 404 200 200  404   200
GET     /projects/{p}/label/next/                           302 405 405 405  405   405
POST    /projects/{p}/label/next/                           302 404 302 302  404   302
GET     /projects/{p}/label/{q}/                            302 404 200 200  404   200
GET     /projects/{p}/dashboard/                            302 404 403 200  404   200
GET     /projects/{p}/dashboard/charts/miou.png             302 404 403 200  404   200
GET     /projects/{p}/settings/                             302 404 403 200  404   200
POST    /projects/{p}/settings/                             302 404 403 200  404   200
GET     /projects/{p}/classes/                              302 404 403 200  404   200
POST    /projects/{p}/classes/                              302 404 403 302  404   302
GET     /projects/{p}/members/                              302 404 403 200  404   200
POST    /projects/{p}/members/                              302 404 403 302  404   302
GET     /projects/{p}/images/                               302 404 403 200  404   200
POST    /projects/{p}/images/                               302 404 403 200  404   200
POST    /projects/{p}/images/split/                         302 404 403 302  404   302
GET     /projects/{p}/images/browse/                        302 404 403 200  404   200
GET     /projects/{p}/images/{img}/                         302 404 403 200  404   200
POST    /projects/{p}/images/request/                       302 404 403 302  404   302
POST    /projects/{p}/start/                                302 404 403 302  404   302
POST    /projects/{p}/rounds/{rn}/close/                    302 404 403 302  404   302
POST    /projects/{p}/jobs/{jq}/cancel/                     302 404 403 302  404   302
POST    /projects/{p}/models/{mv}/promote/                  302 404 403 302  404   302
POST    /projects/{p}/export/                               302 404 403 302  404   302
GET     /admin/                                             302 302 302 302  302   200
GET     /api/                                               401 200 200 200  200   200
GET     /api/schema/                                        200 200 200 200  200   200
GET     /api/docs/                                          200 200 200 200  200   200
POST    /api/auth/token/                                    400 200 200 200  200   200
GET     /api/projects/                                      401 200 200 200  200   200
POST    /api/projects/                                      401 201 201 201  201   201
GET     /api/projects/{p}/                                  401 404 200 200  404   200
PATCH   /api/projects/{p}/                                  401 404 403 200  404   200
PUT     /api/projects/{p}/                                  401 404 403 200  404   200
GET     /api/projects/{p}/classes/                          401 404 200 200  404   200
PUT     /api/projects/{p}/classes/                          401 404 403 200  404   200
GET     /api/projects/{p}/members/                          401 404 200 200  404   200
POST    /api/projects/{p}/members/                          401 404 403 201  404   201
DELETE  /api/projects/{p}/members/{u}/                      401 404 403 204  404   204
GET     /api/projects/{p}/readiness/                        401 404 200 200  404   200
GET     /api/projects/{p}/metrics/                          401 404 403 200  404   200
POST    /api/projects/{p}/images/split/                     401 404 403 400  404   400
POST    /api/projects/{p}/imports/                          401 404 403 202  404   202
POST    /api/projects/{p}/exports/                          401 404 403 202  404   202
POST    /api/projects/{p}/uploads/                          401 404 403 200  404   200
POST    /api/projects/{p}/label-requests/                   401 404 403 201  404   201
POST    /api/projects/{p}/start/                            401 404 403 400  404   400
GET     /api/images/                                        401 200 200 200  200   200
GET     /api/images/{img}/                                  401 404 200 200  404   200
GET     /api/images/{img}/file/                             401 404 200 200  404   200
GET     /api/images/{img}/thumbnail/                        401 404 200 200  404   200
GET     /api/images/{img}/suggestion/                       401 404 200 200  404   200
GET     /api/images/{done}/mask/                            401 404 200 200  404   200
GET     /api/rounds/                                        401 200 200 200  200   200
GET     /api/rounds/{r}/                                    401 404 200 200  404   200
POST    /api/rounds/{r}/close/                              401 404 403 200  404   200
GET     /api/queries/                                       401 200 200 200  200   200
GET     /api/queries/{q}/                                   401 404 200 200  404   200
GET     /api/annotations/                                   401 200 200 200  200   200
GET     /api/annotations/{a}/                               401 404 200 200  404   200
GET     /api/annotations/{a}/mask/                          401 404 200 200  404   200
GET     /api/suggestions/                                   401 200 200 200  200   200
GET     /api/suggestions/{s}/                               401 404 200 200  404   200
GET     /api/suggestions/{s}/mask/                          401 404 200 200  404   200
GET     /api/suggestions/{s}/confidence/                    401 404 200 200  404   200
GET     /api/model-versions/                                401 200 200 200  200   200
GET     /api/model-versions/{mv}/                           401 404 200 200  404   200
POST    /api/model-versions/{mv}/promote/                   401 404 403 200  404   200
GET     /api/model-versions/{mv}/download/                  401 404 403 200  404   200
GET     /api/jobs/                                          401 200 200 200  200   200
GET     /api/jobs/{jd}/                                     401 404 200 200  404   200
POST    /api/jobs/{jq}/cancel/                              401 404 403 200  404   200
POST    /api/jobs/{jf}/retry/                               401 404 403 400  404   400
GET     /api/jobs/{jd}/download/                            401 404 403 200  404   200
POST    /api/labeling/projects/{p}/next/                    401 403 200 200  403   200
GET     /api/labeling/projects/{p}/queue/                   401 403 200 200  403   200
GET     /api/labeling/queries/{q}/                          401 403 200 200  403   200
POST    /api/labeling/queries/{q}/claim/                    401 403 200 200  403   200
POST    /api/labeling/queries/{q}/annotations/?base_version=0  401 403 201 201  403   201
POST    /api/labeling/queries/{q}/submit/?base_version=0    401 403 201 201  403   201
POST    /api/labeling/queries/{q}/skip/                     401 403 200 200  403   200
POST    /api/labeling/queries/{q}/release/                  401 403 200 200  403   200
GET     /api/labeling/queries/{q}/image/                    401 403 200 200  403   200
GET     /api/labeling/queries/{q}/region/                   401 403 200 200  403   200
GET     /api/labeling/queries/{q}/suggestion/mask/          401 403 200 200  403   200
GET     /api/labeling/queries/{q}/superpixels/              401 403 200 200  403   200
GET     /api/labeling/queries/{q}/context/                  401 403 404 404  403   404
GET     /api/labeling/annotations/{a}/mask/                 401 403 200 200  403   200
GET     /projects/{p}/review/                               302 404 403 200  404   200
GET     /projects/{p}/review/next/                          302 404 403 302  404   302
GET     /projects/{p}/review/{rv}/                          302 404 403 200  404   200
GET     /api/review/projects/{p}/reviews/                   401 403 403 200  403   200
GET     /api/review/projects/{p}/summary/                   401 403 403 200  403   200
GET     /api/review/projects/{p}/agreements/                401 403 403 200  403   200
GET     /api/review/items/{rv}/                             401 403 403 200  403   200
POST    /api/review/items/{rv}/accept/                      401 403 403 200  403   200
POST    /api/review/items/{rv}/reject/                      401 403 403 200  403   200
POST    /api/review/items/{rv}/fix/?base_version=1          401 403 403 201  403   201
GET     /favicon.ico                                        301 301 301 301  301   301
POST    /projects/{p}/archive/                              302 404 403 302  404   302
POST    /projects/{p}/delete/                               302 404 403 302  404   302
POST    /api/projects/{p}/archive/                          401 404 403 400  404   400
POST    /api/projects/{p}/unarchive/                        401 404 403 200  404   200
DELETE  /api/projects/{p}/                                  401 404 403 400  404   400
GET     /{media}                                            404 404 404 404  404   404
"""


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expected: dict[str, int]


def matrix_rows() -> list[Row]:
    lines = [line.split() for line in MATRIX.strip().splitlines()[1:]]
    return [Row(method, path, dict(zip(ROLES, map(int, codes), strict=True))) for method, path, *codes in lines]


# --- the routes Django knows ------------------------------------------------------------------------------------

FORMAT_SUFFIX = re.compile(r"\\\.\(\?P<format>\[a-z0-9\]\+\)/\?\$$|<drf_format_suffix:format>$")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern).removeprefix("^")  # joined as ResolverMatch.route joins them
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern.callback


def app_routes() -> dict[str, object]:
    """Every route but Django admin's and DRF's format-suffix twins (the same views with ``.json``), by route."""
    return {route: callback for route, callback in _walk(get_resolver().url_patterns)
            if not route.startswith("admin/") and not FORMAT_SUFFIX.search(route)}


def api_methods(callback) -> set[str] | None:
    """The HTTP methods a DRF view answers (None for a plain Django view: its decorators decide)."""
    if getattr(callback, "actions", None):
        # DRF adds "head" to a viewset's action map the first time the route serves a GET: leave it out.
        return {method.upper() for method in callback.actions if method != "head"}
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None or not issubclass(view_class, APIView):
        return None
    return {m.upper() for m in view_class.http_method_names if hasattr(view_class, m) and m not in ("options", "head")}


# --- one project, six people -------------------------------------------------------------------------------------


@pytest.fixture
def world(users, project, django_user_model, settings, tmp_path):
    """Streets mid-campaign (round 1 labeling) and Harbour, led by someone else; the ids the paths need."""
    from learning.checkpoint import save_checkpoint

    other_lead = django_user_model.objects.create_user("other_lead", password="pw-other-lead")
    project_create(name="Harbour", created_by=other_lead,
                   classes=[ClassSpec(0, "water", "#0000ff", "1"), ClassSpec(1, "boat", "#ff0000", "2")])
    round0 = make_round(project, number=0, state=Round.State.CLOSED)
    model = make_model_version(project, round_=round0)
    save_checkpoint(Path(settings.MODELS_STORE_ROOT) / model.path, state_dict={},
                    meta={"architecture": model.architecture, "classes": model.classes})
    round0.model_version = model
    round0.save(update_fields=["model_version"])
    round1 = make_round(project, number=1, model_version=model, budget_planned_pixels=2 * W * H)
    project.state = project.State.ACTIVE
    project.save(update_fields=["state"])

    done = make_query(round0, make_image(project, size=(W, H)), assignee=users["annotator"],
                      status=Query.Status.SUBMITTED)
    annotation = make_annotation(done, np.zeros((H, W), np.uint8), author=users["annotator"])
    review = Review.objects.create(query=done, annotation=annotation, reason=Review.Reason.ALL)
    region = np.zeros((H, W), bool)
    region[4:16, 4:20] = True
    query = make_query(round1, make_image(project, size=(W, H)), region=region)
    suggestion = make_suggestion(query, np.full((H, W), 1, np.uint8), np.full((H, W), 0.9), model_version=model)
    make_query(round1, make_image(project, size=(W, H)))  # a second pending query: a submit leaves round 1 open
    spare = make_image(project, size=(W, H))  # in the pool, asked for by no query: a lead may request its label

    export = make_job(project, kind=Job.Kind.EXPORT, state=Job.State.SUCCEEDED)
    export_path(job=export, fmt="coco").parent.mkdir(parents=True, exist_ok=True)
    export_path(job=export, fmt="coco").write_text('{"images": []}')
    queued = make_job(project, kind=Job.Kind.EXPORT, state=Job.State.QUEUED)
    failed = make_job(project, round=round1, state=Job.State.FAILED, error="Traceback: /srv/maskloop/x.py")

    imports = tmp_path / "imports"
    (imports / "empty" / "images").mkdir(parents=True)
    settings.MASKLOOP_IMPORT_ROOTS = [str(imports)]
    ids = {"p": project.pk, "q": query.pk, "img": query.image_id, "done": done.image_id, "spare": spare.pk,
           "r": round1.pk, "rn": round1.number, "a": annotation.pk, "s": suggestion.pk, "mv": model.pk,
           "jd": export.pk, "jq": queued.pk, "jf": failed.pk, "u": users["annotator"].pk, "rv": review.pk,
           "media": settings.MEDIA_URL + query.image.file.name}
    people = {"outsider": users["outsider"], "annotator": users["annotator"], "lead": users["lead"],
              "other_lead": other_lead, "staff": users["admin"]}
    return ids, people, imports / "empty"


def bodies(ids: dict, import_folder: Path, username: str) -> dict[tuple[str, str], dict]:
    """What each changing request sends: a valid request, so a permitted role gets past the forms."""
    classes = [{"index": 0, "name": "road", "color": "#804080", "hotkey": "1"},
               {"index": 1, "name": "car", "color": "#400080", "hotkey": "2"},
               {"index": 2, "name": "sky", "color": "#808080", "hotkey": "3"}]
    png = encode_png(np.ones((H, W), np.uint8))
    password = {"other_lead": "pw-other-lead", "staff": "pw-admin"}.get(username, f"pw-{username}")
    name = {"staff": "admin"}.get(username, username)
    credentials = {"username": name, "password": password} if username != "anonymous" else {}
    return {
        ("POST", "/login/"): {"data": credentials or {"username": "nobody", "password": "wrong"}},
        ("POST", "/projects/new/"): {"data": {"name": f"New by {username}", "description": "",
                                              "classes": "road\ncar"}},
        ("POST", "/projects/{p}/settings/"): {"data": {}},
        ("POST", "/projects/{p}/classes/"): {"data": {
            "classes-TOTAL_FORMS": 3, "classes-INITIAL_FORMS": 3,
            **{f"classes-{c['index']}-{key}": c[key] for c in classes for key in ("name", "color", "hotkey")}}},
        ("POST", "/projects/{p}/members/"): {"data": {"action": "add", "username": "outsider", "role": "annotator"}},
        ("POST", "/projects/{p}/images/"): {"data": {}},
        ("POST", "/projects/{p}/images/split/"): {"data": {"image": [ids["img"]], "split": "val"}},
        ("POST", "/projects/{p}/images/request/"): {"data": {"image": [ids["spare"]]}},
        ("POST", "/projects/{p}/export/"): {"data": {"format": "coco"}},
        ("POST", "/api/auth/token/"): {"data": credentials},
        ("POST", "/api/projects/"): {"data": {"name": f"API {username}", "classes": classes[:2]}, "format": "json"},
        ("PATCH", "/api/projects/{p}/"): {"data": {"description": "patched"}, "format": "json"},
        ("PUT", "/api/projects/{p}/"): {"data": {"name": "Streets", "description": "put"}, "format": "json"},
        ("PUT", "/api/projects/{p}/classes/"): {"data": classes, "format": "json"},
        ("POST", "/api/projects/{p}/members/"): {"data": {"username": "outsider", "role": "annotator"},
                                                 "format": "json"},
        ("POST", "/api/projects/{p}/images/split/"): {"data": {"image_ids": [ids["img"]], "split": "val"},
                                                      "format": "json"},
        ("POST", "/api/projects/{p}/imports/"): {"data": {"domain": "target", "folder": str(import_folder)},
                                                 "format": "json"},
        ("POST", "/api/projects/{p}/exports/"): {"data": {"format": "coco"}, "format": "json"},
        ("POST", "/api/projects/{p}/uploads/"): {"data": {"images": [SimpleUploadedFile("new.png", png)]}},
        ("POST", "/api/projects/{p}/label-requests/"): {"data": {"image_ids": [ids["spare"]]}, "format": "json"},
        ("POST", "/api/labeling/queries/{q}/annotations/?base_version=0"): {"data": png, "content_type": "image/png"},
        ("POST", "/api/labeling/queries/{q}/submit/?base_version=0"): {"data": png, "content_type": "image/png"},
        ("POST", "/api/labeling/queries/{q}/skip/"): {"data": {"reason": "blurred"}, "format": "json"},
        ("POST", "/api/labeling/queries/{q}/release/"): {"data": {}, "format": "json"},
        ("POST", "/api/review/items/{rv}/accept/"): {"data": {}, "format": "json"},
        ("POST", "/api/review/items/{rv}/reject/"): {"data": {"comment": "the road is sky"}, "format": "json"},
        ("POST", "/api/review/items/{rv}/fix/?base_version=1"): {"data": png, "content_type": "image/png"},
    }


def session_cookies(people: dict) -> dict[str, dict]:
    """Each role's session cookie, made once: every request gets a fresh client (log-out must not end it)."""
    cookies = {"anonymous": {}}
    for role, user in people.items():
        client = APIClient()
        client.force_login(user)
        cookies[role] = {name: morsel.value for name, morsel in client.cookies.items()}
    return cookies


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def request_as(role: str, cookies: dict, row: Row, ids: dict, body: dict):
    """One request in a rolled-back savepoint: the next cell sees the world as it was."""
    client = APIClient()
    for name, value in cookies[role].items():
        client.cookies[name] = value
    path = row.path.format(**ids)
    with transaction.atomic():
        response = client.generic(row.method, path, **_encoded(client, body))
        content = _body(response)
        transaction.set_rollback(True)
    return response.status_code, content


def _encoded(client: APIClient, body: dict) -> dict:
    if not body:
        return {}
    if "format" in body:
        return {"data": client._encode_data(body["data"], body["format"])[0], "content_type": "application/json"}
    if "content_type" in body:
        return body
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

    return {"data": encode_multipart(BOUNDARY, body["data"]), "content_type": MULTIPART_CONTENT}


# --- the tests ----------------------------------------------------------------------------------------------------


def test_every_url_is_in_the_matrix(world):
    """A route without a row fails here: classify it (who may do what) before it ships."""
    ids = world[0]
    covered: dict[str, set[str]] = {}
    for row in matrix_rows():
        path = row.path.format(**ids).split("?")[0]
        if path.startswith("/admin/") or path.startswith("/" + settings.MEDIA_URL):
            continue
        covered.setdefault(resolve(path).route, set()).add(row.method)
    routes = app_routes()
    assert sorted(set(routes) - set(covered)) == [], "routes without a row in MATRIX"
    for route, callback in routes.items():
        methods = api_methods(callback)
        if methods is not None:
            assert covered[route] == methods, f"{route}: MATRIX has {sorted(covered[route])}, the view {methods}"


def test_each_role_gets_the_status_of_the_table_and_no_outsider_reads_the_project(world):
    ids, people, import_folder = world
    cookies = session_cookies(people)
    wrong, leaks = [], []
    for row in matrix_rows():
        for role in ROLES:
            body = bodies(ids, import_folder, role).get((row.method, row.path), {})
            status, content = request_as(role, cookies, row, ids, body)
            if status != row.expected[role]:
                wrong.append(f"{row.method} {row.path} as {role}: {status}, expected {row.expected[role]}")
            if role in ("anonymous", "outsider", "other_lead") and b"Streets" in content:
                leaks.append(f"{row.method} {row.path} as {role}")
            if role != "staff" and b"/srv/maskloop" in content:
                leaks.append(f"{row.method} {row.path} as {role}: a traceback")
    assert wrong == [] and leaks == [], "\n".join(wrong + leaks)


def test_the_reliability_doc_states_the_size_of_this_matrix():
    rows = matrix_rows()
    sentence = f"{len(rows)} requests × {len(ROLES)} roles = {len(rows) * len(ROLES)} checks"
    assert sentence in RELIABILITY_MD.read_text(), f"docs/RELIABILITY.md should say: {sentence}"
