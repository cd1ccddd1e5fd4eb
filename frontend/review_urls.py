"""Reviewer pages: a project's review queue and the review page of one submitted mask."""
from django.urls import path

from . import review_views as views

urlpatterns = [
    path("projects/<int:project_pk>/review/", views.review_queue, name="review-queue-page"),
    path("projects/<int:project_pk>/review/next/", views.review_next, name="review-next-page"),
    path("projects/<int:project_pk>/review/<int:review_pk>/", views.review_page, name="review-page"),
]
