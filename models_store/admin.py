from django.contrib import admin

from .models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["project", "version", "round", "architecture", "state", "miou", "created_at"]
    list_filter = ["project", "state"]
