"""Django admin for staff: browse everything; state changes go through the same services as the pages and API.

Fields that only a service may change (states, splits once frozen, job
progress) are read-only here, and admin actions call those services, so the
admin never bypasses a rule the rest of the app enforces.
"""
from __future__ import annotations

import copy

from django import forms
from django.contrib import admin, messages
from django.forms.models import construct_instance

from . import models
from .services.errors import ServiceError
from .services.images import image_set_split
from .services.jobs import job_cancel_request
from .services.projects import (
    EDITABLE_FIELDS, project_check_settings, project_delete, project_locked_settings, project_set_archived,
    project_update,
)
from .services.rounds import job_retry, project_start, round_close


def _run_each(modeladmin, request, queryset, verb: str, service) -> None:
    """Apply a service to each selected row; report successes and refusals (with the service's reason)."""
    done = 0
    for obj in queryset:
        try:
            service(obj)
        except ServiceError as exc:
            modeladmin.message_user(request, f"{obj}: {exc}", messages.ERROR)
        else:
            done += 1
    if done:
        modeladmin.message_user(request, f"{verb} {done} row(s).", messages.SUCCESS)


class LabelClassInline(admin.TabularInline):
    model = models.LabelClass
    extra = 0

    def has_add_permission(self, request, obj=None) -> bool:
        # Classes are added while no mask exists; the lead pages' class editor checks that (project_set_classes).
        return obj is None or not obj.has_masks

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_add_permission(request, obj)


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    autocomplete_fields = ["user"]


class ProjectAdminForm(forms.ModelForm):
    class Meta:
        model = models.Project
        fields = "__all__"

    def clean(self):
        data = super().clean()
        if self.instance.pk:
            for field in project_locked_settings(project=self.instance) & set(self.changed_data):
                self.add_error(field, "Fixed once the project has started.")
        # The form fills self.instance only after clean(): check a copy with the submitted values.
        candidate = construct_instance(self, copy.copy(self.instance))
        try:
            project_check_settings(candidate)
        except ServiceError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = ["name", "state", "strategy", "query_unit", "budget_per_round", "budget_unit", "rounds_total",
                    "created_at"]
    list_filter = ["state", "strategy"]
    search_fields = ["name"]
    readonly_fields = ["state", "created_by", "created_at", "archived_at"]
    inlines = [LabelClassInline, MembershipInline]
    actions = ["start_projects", "archive_projects", "unarchive_projects"]

    def save_model(self, request, obj, form, change):
        if change:
            project_update(project=obj, **{f: form.cleaned_data[f] for f in form.changed_data if f in EDITABLE_FIELDS})
        else:
            obj.created_by = request.user
            super().save_model(request, obj, form, change)

    @admin.action(description="Start the selected projects (round 0 trains)")
    def start_projects(self, request, queryset):
        _run_each(self, request, queryset, "Started", lambda p: project_start(project=p, user=request.user))

    @admin.action(description="Archive the selected projects (read-only, listed apart)")
    def archive_projects(self, request, queryset):
        _run_each(self, request, queryset, "Archived", lambda p: project_set_archived(project=p, archived=True))

    @admin.action(description="Unarchive the selected projects")
    def unarchive_projects(self, request, queryset):
        _run_each(self, request, queryset, "Unarchived", lambda p: project_set_archived(project=p, archived=False))

    def get_deleted_objects(self, objs, request):
        # A label version protects its parent from being deleted alone; deleting the project takes both, so the
        # confirmation page need not refuse (project_delete unlinks them first).
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed, []

    def delete_model(self, request, obj):
        project_delete(project=obj, user=request.user)

    def delete_queryset(self, request, queryset):
        for project in queryset:
            project_delete(project=project, user=request.user)


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name"]


@admin.register(models.LabelClass)
class LabelClassAdmin(admin.ModelAdmin):
    list_display = ["project", "index", "name", "color", "hotkey"]
    list_filter = ["project"]


@admin.register(models.Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["original_name", "project", "domain", "split", "width", "height"]
    list_filter = ["project", "domain", "split"]
    search_fields = ["original_name", "checksum"]
    readonly_fields = ["project", "file", "width", "height", "checksum", "domain", "split", "gt_mask", "superpixels",
                       "created_at"]
    actions = ["mark_validation", "return_to_pool"]

    def _set_split(self, request, queryset, split: str) -> None:
        for project_id in queryset.values_list("project_id", flat=True).distinct():
            images = list(queryset.filter(project_id=project_id).values_list("pk", flat=True))
            try:
                changed = image_set_split(project=models.Project.objects.get(pk=project_id), images=images,
                                          split=split)
            except ServiceError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{changed} image(s) moved to {split}.", messages.SUCCESS)

    @admin.action(description="Mark as validation images (before the start only)")
    def mark_validation(self, request, queryset):
        self._set_split(request, queryset, models.Image.Split.VAL)

    @admin.action(description="Return to the unlabeled pool (before the start only)")
    def return_to_pool(self, request, queryset):
        self._set_split(request, queryset, models.Image.Split.POOL)


@admin.register(models.Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ["project", "number", "state", "model_version", "budget_planned_pixels", "opened_at", "closed_at"]
    list_filter = ["project", "state"]
    readonly_fields = ["project", "number", "state", "model_version", "budget_planned_pixels", "stats", "created_at",
                       "opened_at", "closed_at"]
    actions = ["close_rounds"]

    @admin.action(description="Close the selected labeling rounds now (the next round trains)")
    def close_rounds(self, request, queryset):
        _run_each(self, request, queryset, "Closed", lambda r: round_close(round_=r, user=request.user))


@admin.register(models.Query)
class QueryAdmin(admin.ModelAdmin):
    list_display = ["image", "round", "region_key", "pixels", "score", "status", "assignee", "locked_until",
                    "time_spent_seconds"]
    list_filter = ["status", "round__project"]
    search_fields = ["image__original_name", "assignee__username"]
    readonly_fields = ["round", "image", "region_key", "region_mask", "region_bbox", "pixels", "score", "status",
                       "submitted_at", "time_spent_seconds", "created_at", "replica_of", "returned_to"]


@admin.register(models.Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["image", "version", "author", "is_submitted", "labeled_pixels", "suggestion_dice",
                    "time_spent_seconds", "created_at"]
    list_filter = ["is_submitted", "image__project"]
    search_fields = ["image__original_name", "author__username"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # versions are immutable: a correction is a new version


@admin.register(models.Suggestion)
class SuggestionAdmin(admin.ModelAdmin):
    list_display = ["query", "model_version", "coverage", "precision", "created_at"]
    list_filter = ["query__round__project"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # written by the round loop


@admin.register(models.Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "project", "round", "state", "phase", "progress", "attempts", "created_at"]
    list_filter = ["kind", "state", "project"]
    readonly_fields = [f.name for f in models.Job._meta.fields]
    actions = ["retry_jobs", "cancel_jobs"]

    @admin.action(description="Retry the selected failed round jobs")
    def retry_jobs(self, request, queryset):
        _run_each(self, request, queryset, "Queued again", lambda j: job_retry(job=j, user=request.user))

    @admin.action(description="Cancel the selected jobs")
    def cancel_jobs(self, request, queryset):
        _run_each(self, request, queryset, "Asked to stop", lambda j: job_cancel_request(job=j))

from . import admin_review  # noqa: E402,F401  (reviews and agreements)
