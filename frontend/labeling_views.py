"""Annotator pages. The labeling page embeds the query's detail (the API's serializer) and runs label/labeler.js."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from annotator.api.labeling_serializers import QueryDetailSerializer
from annotator.models import Project
from annotator.selectors import membership_role
from annotator.selectors_jobs import round_progress
from annotator.selectors_labeling import labeling_queue, query_get_for_member
from annotator.services.errors import Conflict
from annotator.services.labeling import query_claim_check, query_next


def _member_project(request: HttpRequest, project_pk: int) -> tuple[Project, str]:
    project = get_object_or_404(Project, pk=project_pk)
    role = membership_role(project=project, user=request.user)
    if role is None:
        raise Http404("No such project")  # outsiders do not learn which projects exist
    return project, role


@login_required
def queue(request: HttpRequest, project_pk: int) -> HttpResponse:
    project, role = _member_project(request, project_pk)
    done = request.GET.get("done")
    if done is not None:
        messages.info(request, done or "Nothing more to label right now.")
        return redirect("labeling-queue-page", project_pk=project.pk)
    summary = labeling_queue(project=project, user=request.user)
    progress = round_progress(round_=summary.round) if summary.round is not None else None
    return render(request, "frontend/labeling/queue.html",
                  {"project": project, "role": role, "summary": summary, "progress": progress})


@login_required
@require_POST
def start(request: HttpRequest, project_pk: int) -> HttpResponse:
    """Lock the next query for the annotator and open it."""
    project, _ = _member_project(request, project_pk)
    query = query_next(project=project, user=request.user)
    if query is None:
        summary = labeling_queue(project=project, user=request.user)
        messages.info(request, "The project is archived: nothing is handed out to label." if project.archived_at
                      else "Every open query is being labeled by someone else; try again in a moment."
                      if summary.is_labeling and summary.pending else "Nothing to label right now.")
        return redirect("labeling-queue-page", project_pk=project.pk)
    return redirect("labeling-page", project_pk=project.pk, query_pk=query.pk)


@login_required
@require_safe
def label(request: HttpRequest, project_pk: int, query_pk: int) -> HttpResponse:
    """The labeling page. It changes nothing: its script claims the query (POST, CSRF) before painting starts."""
    query = query_get_for_member(pk=query_pk, user=request.user)
    if query is None or query.round.project_id != project_pk:
        raise Http404("No such query")
    try:
        query_claim_check(query=query, user=request.user)
    except Conflict as exc:
        return render(request, "frontend/labeling/unavailable.html",
                      {"project": query.round.project, "query": query, "reason": str(exc)}, status=409)
    detail = QueryDetailSerializer(query, context={"request": request}).data
    return render(request, "frontend/labeling/label.html", {"project": query.round.project, "query": query,
                                                           "detail": detail})
