"""Reads: who may see what, and the lists the pages and the API show."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery

from .models import Membership, Project, Query


def project_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """Projects the user belongs to (every project for staff), with role, current round and open queries."""
    projects = Project.objects.all() if user.is_staff else Project.objects.filter(memberships__user=user)
    role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    return projects.annotate(
        role=Subquery(role),
        current_round=Max("rounds__number"),
        open_queries=Count("rounds__queries", filter=Q(rounds__queries__status=Query.Status.PENDING), distinct=True),
    ).order_by("name")


def membership_role(*, project: Project, user: AbstractBaseUser) -> str | None:
    """'lead', 'annotator', or None; staff count as leads everywhere."""
    if not user.is_authenticated:
        return None
    if user.is_staff:
        return Membership.Role.LEAD
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
