from django.contrib import admin

from .models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Model versions are written by the round loop; staff read them here and download them from the dashboard."""

    list_display = ["project", "version", "round", "architecture", "state", "miou", "labeled_target_pixels",
                    "created_at"]
    list_filter = ["project", "state", "architecture"]
    list_select_related = ["project", "round"]
    search_fields = ["project__name"]
    readonly_fields = ["project", "round", "version", "parent", "path", "architecture", "classes", "metrics",
                       "train_config", "labeled_target_pixels", "created_at"]
