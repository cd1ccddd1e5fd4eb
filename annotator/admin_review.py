"""Django admin of reviews and agreements (imported by annotator/admin.py).

Everything is read-only here: decisions go through annotator.services.review,
which the "accept" action calls, so the admin keeps the same rules (a decided
review stays decided, nobody reviews their own mask).
"""
from __future__ import annotations

from django.contrib import admin

from . import models
from .services.review import review_accept


@admin.register(models.Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["id", "query", "annotation", "reason", "state", "reviewer", "created_at", "decided_at"]
    list_filter = ["state", "reason", "query__round__project"]
    search_fields = ["query__image__original_name", "comment", "annotation__author__username"]
    readonly_fields = ["query", "annotation", "agreement", "state", "reason", "reviewer", "fix", "comment", "marks",
                       "created_at", "decided_at"]
    actions = ["accept_reviews"]

    def has_add_permission(self, request) -> bool:
        return False  # a review comes from a submit (annotator/services/review.py)

    @admin.action(description="Accept the selected reviews (as me)")
    def accept_reviews(self, request, queryset):
        from .admin import _run_each

        _run_each(self, request, queryset, "Accepted", lambda review: review_accept(review=review, user=request.user))


@admin.register(models.Agreement)
class AgreementAdmin(admin.ModelAdmin):
    list_display = ["id", "query", "first", "second", "score", "boundary_f", "passed", "created_at"]
    list_filter = ["passed", "query__round__project"]
    readonly_fields = ["query", "first", "second", "merged", "score", "per_class_iou", "boundary_f", "passed",
                       "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
