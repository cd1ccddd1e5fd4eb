"""The one place where a service's refusal becomes an HTTP answer, for every API view.

DRF calls :func:`exception_handler` (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``)
with whatever a view raised, so views call services directly and never catch
their errors. A :class:`~annotator.services.errors.ServiceError` answers
``{"detail": <its sentence>, "code": …}``:

- 409 for stale state (:class:`~annotator.services.errors.Conflict`): a stale
  base version (with the latest version, to merge onto), a query someone else
  holds, a round closed under a submit (with the draft that was kept);
- 403 for a refusal about who asks (:class:`~annotator.services.errors.PermissionDenied`);
- 400 for the rest: a mask that does not fit, a request the domain refuses.

Django's ``ValidationError`` (a model's ``full_clean``) is a 400 like a
serializer's; ``Http404`` and Django's ``PermissionDenied`` keep DRF's own
handling (404, 403). A database that cannot be reached (restarting, failing
over; SQLite locked past its busy timeout) is a 503 with ``Retry-After``:
nothing was stored, and the labeling page keeps the work and tries again.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from ..services import labeling
from ..services.errors import Conflict, PermissionDenied, ServiceError
from .labeling_serializers import AnnotationVersionSerializer


@dataclass(frozen=True)
class Answer:
    status: int
    code: str
    extra: Callable[[ServiceError], dict] | None = None  # more of the body, built from the error


def _latest(exc: labeling.StaleVersion) -> dict:
    return {"latest": AnnotationVersionSerializer(exc.latest).data if exc.latest else None,
            "same_user": exc.same_user}


def _kept_draft(exc: labeling.RoundClosed) -> dict:
    return {"annotation": AnnotationVersionSerializer(exc.saved.annotation).data}


# The most specific class of an error wins (its MRO is searched in order).
ANSWERS: dict[type[ServiceError], Answer] = {
    labeling.StaleVersion: Answer(status.HTTP_409_CONFLICT, "stale_version", _latest),
    labeling.RoundClosed: Answer(status.HTTP_409_CONFLICT, "round_closed", _kept_draft),
    labeling.QueryLocked: Answer(status.HTTP_409_CONFLICT, "locked"),
    Conflict: Answer(status.HTTP_409_CONFLICT, "conflict"),
    PermissionDenied: Answer(status.HTTP_403_FORBIDDEN, "permission_denied"),
    labeling.InvalidMask: Answer(status.HTTP_400_BAD_REQUEST, "invalid_mask"),
    ServiceError: Answer(status.HTTP_400_BAD_REQUEST, "invalid"),
}


def service_error_response(exc: ServiceError) -> Response:
    answer = next(ANSWERS[cls] for cls in type(exc).__mro__ if cls in ANSWERS)
    body = {"detail": str(exc), "code": answer.code, **(answer.extra(exc) if answer.extra else {})}
    return Response(body, status=answer.status)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    # No set_rollback() for a service error: the service's own transaction has
    # ended, and a RoundClosed answer reports a draft that was stored and stays.
    if isinstance(exc, ServiceError):
        return service_error_response(exc)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, (OperationalError, InterfaceError)):
        return Response({"detail": "The database cannot be reached right now, so nothing was saved; try again in a "
                                   "moment.", "code": "database_unavailable"},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})
    return drf_exception_handler(exc, context)
