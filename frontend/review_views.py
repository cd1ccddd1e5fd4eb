"""Reviewer pages. The review page embeds the review's detail (the API's serializer) and runs review/review.js."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_safe

from annotator.api.review_serializers import ReviewSerializer
from annotator.models import Project, Review
from annotator.selectors import membership_role
from annotator.selectors_review import membership_can_review, review_list, review_summary


def _reviewer_project(request: HttpRequest, project_pk: int) -> tuple[Project, str]:
    project = get_object_or_404(Project, pk=project_pk)
    role = membership_role(project=project, user=request.user)
    if role is None:
        raise Http404("No such project")
    if not membership_can_review(project=project, user=request.user):
        raise PermissionDenied("Only the project's leads and reviewers can review.")
    return project, role


@login_required
@require_safe
def review_queue(request: HttpRequest, project_pk: int) -> HttpResponse:
    project, role = _reviewer_project(request, project_pk)
    pending = list(review_list(project=project))
    for review in pending:
        review.own = review.annotation.author_id == request.user.pk
    decided = list(review_list(project=project, state=None).exclude(state=Review.State.PENDING)
                   .order_by("-decided_at", "-pk")[:15])
    return render(request, "frontend/review/queue.html", {
        "project": project, "role": role, "pending": pending, "decided": decided,
        "summary": review_summary(project=project),
    })


@login_required
@require_safe
def review_next(request: HttpRequest, project_pk: int) -> HttpResponse:
    """The oldest pending review the user may decide (not of their own mask), else the queue."""
    project, _ = _reviewer_project(request, project_pk)
    review = review_list(project=project).exclude(annotation__author=request.user).first()
    if review is None:
        return redirect("review-queue-page", project_pk=project.pk)
    return redirect("review-page", project_pk=project.pk, review_pk=review.pk)


@login_required
@require_safe
def review_page(request: HttpRequest, project_pk: int, review_pk: int) -> HttpResponse:
    project, _ = _reviewer_project(request, project_pk)
    review = get_object_or_404(review_list(project=project, state=None), pk=review_pk)
    detail = ReviewSerializer(review).data
    return render(request, "frontend/review/review.html", {"project": project, "review": review, "detail": detail})
