"""List controls: exact-match filters declared per view, and page-number pagination with a page size.

A view declares ``filters = {"param": Filter("orm__lookup", int)}``; the
backend applies the ones present in the query string and describes all of
them to the OpenAPI schema, so clients see every filter in ``/api/docs/``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend
from rest_framework.pagination import PageNumberPagination

_OPENAPI_TYPES = {int: "integer", str: "string", bool: "boolean"}
# What a database integer column holds (SQLite raises OverflowError past it, a 500 instead of a 400).
INT_RANGE = (-(2**63), 2**63 - 1)


def _parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise ValueError(value)


@dataclass(frozen=True)
class Filter:
    lookup: str
    type: type = int
    choices: tuple[str, ...] = ()
    description: str = ""

    def parse(self, value: str):
        if self.type is bool:
            return _parse_bool(value)
        parsed = self.type(value)
        if self.type is int and not INT_RANGE[0] <= parsed <= INT_RANGE[1]:
            raise ValueError(value)
        if self.choices and parsed not in self.choices:
            raise ValueError(value)
        return parsed


class DeclaredFilterBackend(BaseFilterBackend):
    def filter_queryset(self, request, queryset, view):
        errors = {}
        for param, spec in getattr(view, "filters", {}).items():
            raw = request.query_params.get(param)
            if raw in (None, ""):
                continue
            try:
                value = spec.parse(raw)
            except ValueError:
                expected = (f"one of {list(spec.choices)}" if spec.choices else
                            "a 64-bit integer" if spec.type is int else f"a {_OPENAPI_TYPES[spec.type]}")
                errors[param] = f"expected {expected}, got {raw!r}"
                continue
            queryset = spec.apply(queryset, value) if isinstance(spec, CustomFilter) else (
                queryset.filter(**{spec.lookup: value})
            )
        if errors:
            raise ValidationError(errors)
        return queryset

    def get_schema_operation_parameters(self, view):
        parameters = []
        for param, spec in getattr(view, "filters", {}).items():
            schema = {"type": _OPENAPI_TYPES[spec.type]}
            if spec.choices:
                schema["enum"] = list(spec.choices)
            parameters.append({
                "name": param, "required": False, "in": "query", "schema": schema,
                "description": spec.description or f"Only rows whose {spec.lookup.replace('__', '.')} equals this.",
            })
        return parameters


@dataclass(frozen=True)
class CustomFilter(Filter):
    """A filter whose meaning is not one lookup (e.g. 'active' = queued or running)."""

    function: Callable | None = None

    def apply(self, queryset, value):
        return self.function(queryset, value)


class PageNumberWithSize(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
