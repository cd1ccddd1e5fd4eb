"""Project-scoped permissions: small classes, one question each."""
from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from ..models import Membership
from ..selectors import membership_role


def project_of(obj):
    """The project an object belongs to, following the FK chain of each model."""
    for path in ("project", "round.project", "image.project", "query.round.project"):
        target = obj
        try:
            for attr in path.split("."):
                target = getattr(target, attr)
        except AttributeError:
            continue
        if target is not None:
            return target
    return obj  # a Project itself


class IsProjectMember(BasePermission):
    """Members read; the object's project decides."""

    message = "You are not a member of this project."

    def has_object_permission(self, request, view, obj) -> bool:
        return membership_role(project=project_of(obj), user=request.user) is not None


class IsProjectLeadOrReadOnly(BasePermission):
    message = "Only the project's leads can change this."

    def has_object_permission(self, request, view, obj) -> bool:
        role = membership_role(project=project_of(obj), user=request.user)
        if request.method in SAFE_METHODS:
            return role is not None
        return role == Membership.Role.LEAD
