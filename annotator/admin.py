from django.contrib import admin

from . import models


class LabelClassInline(admin.TabularInline):
    model = models.LabelClass
    extra = 0


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "state", "strategy", "query_unit", "budget_per_round", "budget_unit", "rounds_total"]
    list_filter = ["state", "strategy"]
    search_fields = ["name"]
    inlines = [LabelClassInline, MembershipInline]


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role"]
    list_filter = ["role", "project"]


@admin.register(models.LabelClass)
class LabelClassAdmin(admin.ModelAdmin):
    list_display = ["project", "index", "name", "color", "hotkey"]
    list_filter = ["project"]


@admin.register(models.Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["original_name", "project", "domain", "split", "width", "height"]
    list_filter = ["project", "domain", "split"]
    search_fields = ["original_name", "checksum"]


@admin.register(models.Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ["project", "number", "state", "model_version", "opened_at", "closed_at"]
    list_filter = ["project", "state"]


@admin.register(models.Query)
class QueryAdmin(admin.ModelAdmin):
    list_display = ["image", "round", "region_key", "pixels", "score", "status", "assignee", "locked_until"]
    list_filter = ["status", "round__project"]


@admin.register(models.Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["image", "version", "author", "is_submitted", "time_spent_seconds", "created_at"]
    list_filter = ["is_submitted", "image__project"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # versions are immutable: a correction is a new version


@admin.register(models.Suggestion)
class SuggestionAdmin(admin.ModelAdmin):
    list_display = ["query", "model_version", "coverage", "precision", "created_at"]


@admin.register(models.Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "project", "round", "state", "phase", "progress", "created_at"]
    list_filter = ["kind", "state"]
    readonly_fields = ["celery_task_id", "log", "error"]
