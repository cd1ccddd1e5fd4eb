"""Lead pages: create and configure a project, import and split images, assign people, run and watch rounds.

Every page is for the project's leads and staff: outsiders get 404 (a
project's existence is not revealed), annotators 403. Each POST calls one
service and redirects back with a message; refusals show the service's
sentence. Live progress comes from the jobs API, polled by lead/jobs.js.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from annotator.models import Image, Job, Membership, Project, Round
from annotator.selectors import (
    IMAGE_STATUSES, image_list_with_status, image_overlays, image_split_counts, image_status_counts, job_error_for,
    job_list, membership_list, membership_role, project_metrics, round_current, validation_progress,
)
from annotator.selectors_jobs import job_cancel_question, round_progress
from annotator.services.errors import ServiceError
from annotator.services.exports import export_file, export_start
from annotator.services.image_requests import image_request_label, image_request_refusal
from annotator.services.images import image_import_start, image_set_split
from annotator.services.jobs import job_cancel_request
from annotator.services.projects import (
    ClassSpec, membership_remove, membership_set, project_create, project_delete, project_locked_settings,
    project_may_create, project_set_archived, project_set_classes, project_update,
)
from annotator.services.rounds import job_retry, project_readiness, project_start, round_close
from annotator.services.uploads import UPLOAD_SPLITS
from learning.promotion import MAX_DROP
from models_store.models import ModelVersion
from models_store.selectors import model_version_current
from models_store.services import model_version_promote

from . import forms
from .lead_chart_data import chart_specs


def lead_project(request: HttpRequest, pk: int) -> Project:
    """The project, if the user leads it (or is staff): 404 for outsiders, 403 for annotators."""
    project = get_object_or_404(Project, pk=pk)
    role = membership_role(project=project, user=request.user)
    if role is None:
        raise Http404("No such project.")
    if role != Membership.Role.LEAD:
        raise PermissionDenied("Only the project's leads can open this page.")
    return project


def _render(request, template: str, project: Project | None, tab: str, **context) -> HttpResponse:
    return render(request, f"frontend/lead/{template}",
                  {"project": project, "tab": tab, "can_create": project_may_create(request.user), **context})


def _back(request, project: Project, default: str = "project-dashboard"):
    target = request.POST.get("next", "")
    if target.startswith("/") and not target.startswith("//"):
        return redirect(target)
    return redirect(default, pk=project.pk)


# --- Create and configure -------------------------------------------------------------------------------------


@login_required
def project_create_view(request: HttpRequest) -> HttpResponse:
    if not project_may_create(request.user):
        raise PermissionDenied("Only permitted users may create projects here: ask an administrator.")
    form = forms.ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = project_create(name=form.cleaned_data["name"], description=form.cleaned_data["description"],
                                     classes=form.cleaned_data["classes"], created_by=request.user)
        except ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Created {project.name}. Next: set the budget and strategy, then import "
                                      "images.")
            return redirect("project-settings", pk=project.pk)
    return _render(request, "create.html", None, "create", form=form)


@login_required
def project_settings_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = lead_project(request, pk)
    locked = project_locked_settings(project=project)
    # The form validates a copy: the row changes only through project_update.
    form = forms.ProjectSettingsForm(request.POST or None, instance=Project.objects.get(pk=pk), locked=locked)
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name not in locked}
        try:
            project_update(project=project, **changes)
        except ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Settings saved." + (" They apply from the next round." if locked else ""))
            return redirect("project-settings", pk=pk)
    counts = image_split_counts(project=project)
    pool = project.images.filter(domain=Image.Domain.TARGET, split=Image.Split.POOL)
    pool_pixels = sum(w * h for w, h in pool.values_list("width", "height"))
    return _render(request, "settings.html", project, "settings", form=form, counts=counts,
                   pool_images=pool.count(), pool_pixels=pool_pixels)


@login_required
def project_classes_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = lead_project(request, pk)
    has_masks = project.has_masks
    FormSet = forms.LockedClassFormSet if has_masks else forms.ClassFormSet
    initial = [{"name": c.name, "color": c.color, "hotkey": c.hotkey} for c in project.classes.order_by("index")]
    formset = FormSet(request.POST or None, initial=initial, prefix="classes")
    if request.method == "POST" and formset.is_valid():
        kept = [f.cleaned_data for f in formset.forms
                if f.cleaned_data and not f.cleaned_data.get("DELETE") and f.cleaned_data.get("name")]
        specs = [ClassSpec(i, c["name"].strip(), c["color"], c.get("hotkey", "").strip()) for i, c in enumerate(kept)]
        try:
            project_set_classes(project=project, classes=specs)
        except ServiceError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Saved {len(specs)} classes.")
            return redirect("project-classes", pk=pk)
    return _render(request, "classes.html", project, "classes", formset=formset, has_masks=has_masks)


@login_required
def project_members_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = lead_project(request, pk)
    form = forms.MemberForm(request.POST or None)
    if request.method == "POST":
        action = request.POST.get("action", "add")
        try:
            if action == "add" and form.is_valid():
                membership_set(project=project, user=form.cleaned_data["username"], role=form.cleaned_data["role"])
                messages.success(request, f"{form.cleaned_data['username']} is now "
                                          f"{Membership.Role(form.cleaned_data['role']).label.lower()}.")
                return redirect("project-members", pk=pk)
            if action in ("role", "remove"):
                user = get_object_or_404(get_user_model(), pk=request.POST.get("user"))
                if action == "remove":
                    membership_remove(project=project, user=user)
                    messages.success(request, f"{user} left the project; their open queries went back to the queue.")
                else:
                    membership_set(project=project, user=user, role=request.POST.get("role", ""))
                    messages.success(request, f"{user} is now {request.POST.get('role')}.")
                return redirect("project-members", pk=pk)
        except ServiceError as exc:
            messages.error(request, str(exc))
    members = membership_list(project=project)
    candidates = (get_user_model().objects.filter(is_active=True).exclude(memberships__project=project)
                  .order_by("username").values_list("username", flat=True)[:500])
    return _render(request, "members.html", project, "members", form=form, members=members,
                   candidates=candidates, roles=Membership.Role.choices)


# --- Images: import and the validation split ------------------------------------------------------------------


@login_required
def project_images_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = lead_project(request, pk)
    form = forms.ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = image_import_start(project=project, user=request.user, domain=data["domain"],
                                     val_count=data["val_count"], upload=data.get("archive"),
                                     folder=data.get("folder", "").strip())
        except ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Import started (job {job.pk}); its progress shows below.")
            return redirect("project-images", pk=pk)
    domain = request.GET.get("domain") if request.GET.get("domain") in Image.Domain.values else Image.Domain.TARGET
    split = request.GET.get("split") if request.GET.get("split") in Image.Split.values else ""
    images = project.images.filter(domain=domain).order_by("original_name")
    if split:
        images = images.filter(split=split)
    page = Paginator(images, 100).get_page(request.GET.get("page"))
    return _render(request, "images.html", project, "images", form=form, counts=image_split_counts(project=project),
                   page=page, domain=domain, split=split, frozen=project.has_started,
                   filters=urlencode({"domain": domain, "split": split}), domains=Image.Domain.choices,
                   splits=Image.Split.choices, upload_targets=_upload_targets(project),
                   import_jobs=project.jobs.filter(kind=Job.Kind.IMPORT).order_by("-created_at")[:10])


def _upload_targets(project: Project) -> list[dict]:
    """The upload form's "add as" choices: every domain and split an upload may go to, closed ones disabled."""
    labels = {Image.Split.POOL: "Target images, unlabeled pool", Image.Split.TRAIN: "Source images, with masks",
              Image.Split.VAL: "Target validation images, with masks (before the start)"}
    return [{"domain": domain, "split": split, "label": labels[split],
             "disabled": split == Image.Split.VAL and project.has_started}
            for domain, splits in UPLOAD_SPLITS.items() for split in splits]


# --- Image browser --------------------------------------------------------------------------------------------

BROWSE_PAGE_SIZE = 48
# The statuses a lead may send to the labeling round's queue ("label this one").
REQUESTABLE = ("unlabeled", "labeled")


def _labeling_round(project: Project) -> Round | None:
    current = round_current(project=project)
    return current if current is not None and current.state == Round.State.LABELING else None


@login_required
def project_browse_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = lead_project(request, pk)
    status = request.GET.get("status") if request.GET.get("status") in IMAGE_STATUSES else ""
    domain = request.GET.get("domain") if request.GET.get("domain") in Image.Domain.values else ""
    images = image_list_with_status(project=project, status=status, domain=domain)
    page = Paginator(images, BROWSE_PAGE_SIZE).get_page(request.GET.get("page"))
    counts = image_status_counts(project=project)
    return _render(request, "browse.html", project, "browse", page=page, status=status, domain=domain,
                   counts=counts, total=sum(counts.values()), domains=Image.Domain.choices,
                   filters=urlencode({key: value for key, value in (("status", status), ("domain", domain)) if value}),
                   labeling_round=_labeling_round(project), requestable=REQUESTABLE)


@login_required
def project_image_view(request: HttpRequest, pk: int, image_pk: int) -> HttpResponse:
    """One image, read only, with its latest mask and latest suggestion as overlays (drawn by lead/viewer.js)."""
    project = lead_project(request, pk)
    image = get_object_or_404(image_list_with_status(project=project), pk=image_pk)
    overlays = image_overlays(image=image)
    labeling_round = _labeling_round(project)
    viewer = {
        "width": image.width, "height": image.height,
        "classes": list(project.classes.order_by("index").values("index", "name", "color")),
        "mask_url": reverse("image-mask", args=[image.pk]) if overlays.mask or overlays.ground_truth else None,
        "suggestion_url": reverse("image-suggestion", args=[image.pk]) if overlays.suggestion else None,
    }
    refusal = (image_request_refusal(image=image, round_=labeling_round) if labeling_round
               else "Images can be sent to the queue while a round is labeling.")
    return _render(request, "image.html", project, "browse", image=image, overlays=overlays, viewer=viewer,
                   queries=image.queries.select_related("round", "assignee").order_by("-round__number", "pk"),
                   labeling_round=labeling_round, refusal=refusal)


@login_required
@require_POST
def project_images_request_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = lead_project(request, pk)
    ids = [int(i) for i in request.POST.getlist("image") if i.isdigit()]
    try:
        queries = image_request_label(project=project, images=ids, user=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
    else:
        number = queries[0].round.number
        messages.success(request, f"Sent {len(queries)} image(s) to the front of round {number}'s queue.")
    return _back(request, project, "project-browse")


@login_required
@require_POST
def project_images_split_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = lead_project(request, pk)
    ids = [int(i) for i in request.POST.getlist("image") if i.isdigit()]
    split = request.POST.get("split", "")
    if not ids:
        messages.error(request, "Select some images first.")
    else:
        try:
            changed = image_set_split(project=project, images=ids, split=split)
        except ServiceError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{changed} image(s) moved to {Image.Split(split).label.lower()}.")
    return _back(request, project, "project-images")


# --- Running the project --------------------------------------------------------------------------------------


@login_required
@require_POST
def project_start_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = lead_project(request, pk)
    try:
        round_ = project_start(project=project, user=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Started: round 0 is training on labeled source and unlabeled target images."
                         if round_.state == Round.State.TRAINING else
                         "Started: round 0 is picking a diverse first set of images to label (no model yet).")
    return redirect("project-dashboard", pk=pk)


@login_required
@require_POST
def round_close_view(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    project = lead_project(request, pk)
    round_ = get_object_or_404(Round, project=project, number=number)
    try:
        following = round_close(round_=round_, user=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Closed round {number} early; round {following.number} is training."
                         if following else f"Closed round {number}.")
    return redirect("project-dashboard", pk=pk)


@login_required
@require_POST
def job_action_view(request: HttpRequest, pk: int, job_pk: int, action: str) -> HttpResponse:
    project = lead_project(request, pk)
    job = get_object_or_404(Job, pk=job_pk, project=project)
    try:
        if action == "retry":
            new = job_retry(job=job, user=request.user)
            messages.success(request, f"Job {job.pk} queued again as job {new.pk}.")
        elif action == "cancel":
            job_cancel_request(job=job)
            messages.success(request, f"Asked job {job.pk} to stop.")
        else:
            raise Http404
    except ServiceError as exc:
        messages.error(request, str(exc))
    return _back(request, project)


@login_required
@require_POST
def project_export_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = lead_project(request, pk)
    form = forms.ExportForm(request.POST)
    if form.is_valid():
        try:
            job = export_start(project=project, fmt=form.cleaned_data["format"],
                               include_imported=form.cleaned_data["include_imported"])
        except ServiceError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Export started (job {job.pk}); a download link appears when it is done.")
    return redirect(reverse("project-dashboard", kwargs={"pk": pk}) + "#exports")


@login_required
@require_POST
def project_archive_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Archive (action=archive) or bring back (action=unarchive) a project."""
    project = lead_project(request, pk)
    archived = request.POST.get("action", "archive") == "archive"
    try:
        project_set_archived(project=project, archived=archived)
    except ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Archived {project.name}: it is read-only and listed apart on My projects."
                         if archived else f"{project.name} is back among your projects.")
    return _back(request, project, "project-settings")


@login_required
@require_POST
def project_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a project for good, once the lead typed its name (the page asks again before sending)."""
    project = lead_project(request, pk)
    if request.POST.get("confirm_name", "").strip() != project.name:
        messages.error(request, "Type the project's name exactly to delete it; nothing was deleted.")
        return redirect("project-settings", pk=pk)
    try:
        project_delete(project=project, user=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc))
        return redirect("project-settings", pk=pk)
    messages.success(request, f"Deleted {project.name} with its images, labels, models and exports.")
    return redirect("home")


# --- Dashboard ------------------------------------------------------------------------------------------------


def _heat(value: float | None) -> str:
    """Background of a per-class IoU cell: red (0) → yellow → green (1); grey for n/a."""
    if value is None:
        return "background:#f3f4f6;color:#6b7280"
    return f"background:hsl({int(120 * max(0.0, min(1.0, value)))},70%,82%)"


@login_required
def project_dashboard_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = lead_project(request, pk)
    metrics = project_metrics(project=project)
    baseline = metrics.baseline_miou
    rounds = [
        {"m": r, "delta": (r.miou - baseline) if r.miou is not None and baseline is not None else None,
         "spent_share": r.labeled_pixels / r.budget_planned_pixels if r.budget_planned_pixels else None}
        for r in metrics.rounds
    ]
    per_class = [
        {"number": r.number, "cells": [(r.per_class_iou.get(c), _heat(r.per_class_iou.get(c))) for c in metrics.classes]}
        for r in metrics.rounds if r.per_class_iou
    ]
    jobs = job_list(project=project)
    for job in jobs:
        job.download_ready = job.kind == Job.Kind.EXPORT and export_file(job=job) is not None
        job.error_shown = job_error_for(job=job, user=request.user)  # the traceback for staff only
        job.cancel_question = job_cancel_question(job=job)
    current = round_current(project=project)
    return _render(
        request, "dashboard.html", project, "dashboard",
        metrics=metrics, rounds=rounds, per_class=per_class, jobs=jobs,
        current=current, current_progress=round_progress(round_=current) if current else None,
        readiness=project_readiness(project=project),
        started=project.has_started, labeled_fraction=metrics.labeled_fraction,
        validation=validation_progress(project=project),
        model_versions=ModelVersion.objects.filter(project=project).select_related("round").order_by("-version"),
        **_serving_context(project),
        charts=[spec.to_dict() for spec in chart_specs(metrics)], export_form=forms.ExportForm(),
        charts_key=_fingerprint(metrics)[:12],
    )


def _serving_context(project: Project) -> dict:
    """The model that serves suggestions now, and where round 0's backbone started (for the dashboard)."""
    serving = model_version_current(project=project)
    first = ModelVersion.objects.filter(project=project).order_by("version").first()
    return {"serving_pk": serving.pk if serving else None, "serving_version": serving.version if serving else None,
            "first_backbone": ((first.metrics or {}).get("pretrained") or {}).get("description") if first else None,
            "keep_best_max_drop": f"{100 * MAX_DROP:g}"}


@login_required
@require_POST
def model_version_promote_view(request: HttpRequest, pk: int, version_pk: int) -> HttpResponse:
    project = lead_project(request, pk)
    chosen = get_object_or_404(ModelVersion, pk=version_pk, project=project)
    model_version_promote(model_version=chosen, user=request.user)
    messages.success(request, f"Model v{chosen.version} now serves suggestions; the next round fine-tunes it.")
    return _back(request, project)


def _fingerprint(metrics) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(metrics), sort_keys=True, default=str).encode()).hexdigest()


@login_required
def project_chart_view(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    """A dashboard chart as a PNG for reports (the page itself draws them in the browser)."""
    from .lead_charts import CHARTS  # matplotlib: loaded by this view only, no other page pays for it

    project = lead_project(request, pk)
    if name not in CHARTS:
        raise Http404("No such chart.")
    metrics = project_metrics(project=project)
    key = f"maskloop:chart:{project.pk}:{name}:{_fingerprint(metrics)}"
    png = cache.get(key)
    if png is None:
        png = CHARTS[name](metrics)
        cache.set(key, png, 3600)
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=0, must-revalidate"
    return response
