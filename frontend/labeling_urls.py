"""Annotator pages: a project's queue, "start labeling", and the labeling page of one query."""
from django.urls import path

from . import labeling_views as views

urlpatterns = [
    path("projects/<int:project_pk>/queue/", views.queue, name="labeling-queue-page"),
    path("projects/<int:project_pk>/label/next/", views.start, name="labeling-start"),
    path("projects/<int:project_pk>/label/<int:query_pk>/", views.label, name="labeling-page"),
]
