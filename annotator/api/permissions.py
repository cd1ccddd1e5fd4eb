"""Project-scoped permissions: small classes, one question each.

Lists are already narrowed to the user's projects by each view's queryset, so
an outsider gets 404 for a single object (its existence is not revealed);
these classes then decide between members who may read and leads who may
write. Staff count as leads everywhere.
"""
from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from ..models import Membership, Project
from ..selectors import membership_role

_PROJECT_PATHS = ("project", "round.project", "image.project", "query.round.project")


def project_of(obj) -> Project | None:
    """The project an object belongs to, following the FK chain of each model."""
    if isinstance(obj, Project):
        return obj
    for path in _PROJECT_PATHS:
        target = obj
        try:
            for attr in path.split("."):
                target = getattr(target, attr)
        except AttributeError:
            continue
        if isinstance(target, Project):
            return target
    return None


def role_for(request, obj) -> str | None:
    if request.user.is_authenticated and request.user.is_staff:
        return Membership.Role.LEAD
    project = project_of(obj)
    return membership_role(project=project, user=request.user) if project is not None else None


class IsProjectMember(BasePermission):
    """Members read; the object's project decides."""

    message = "You are not a member of this project."

    def has_object_permission(self, request, view, obj) -> bool:
        return role_for(request, obj) is not None


class IsProjectLead(BasePermission):
    """Leads (and staff) only, for reads too: metrics, throughput and exports are the lead's view."""

    message = "Only the project's leads can do this."

    def has_object_permission(self, request, view, obj) -> bool:
        return role_for(request, obj) == Membership.Role.LEAD


class IsProjectLeadOrReadOnly(BasePermission):
    message = "Only the project's leads can change this."

    def has_object_permission(self, request, view, obj) -> bool:
        role = role_for(request, obj)
        if request.method in SAFE_METHODS:
            return role is not None
        return role == Membership.Role.LEAD
