"""Annotator endpoints under /api/labeling/: the queue, one query, its files, and saving masks."""
from django.urls import path

from . import labeling_views as views

urlpatterns = [
    path("labeling/projects/<int:project_pk>/next/", views.NextQueryView.as_view(), name="labeling-next"),
    path("labeling/projects/<int:project_pk>/queue/", views.QueueView.as_view(), name="labeling-queue"),
    path("labeling/queries/<int:pk>/", views.QueryDetailView.as_view(), name="labeling-query"),
    path("labeling/queries/<int:pk>/claim/", views.ClaimView.as_view(), name="labeling-query-claim"),
    path("labeling/queries/<int:pk>/annotations/", views.SaveView.as_view(), name="labeling-query-save"),
    path("labeling/queries/<int:pk>/submit/", views.SubmitView.as_view(), name="labeling-query-submit"),
    path("labeling/queries/<int:pk>/skip/", views.SkipView.as_view(), name="labeling-query-skip"),
    path("labeling/queries/<int:pk>/release/", views.ReleaseView.as_view(), name="labeling-query-release"),
    path("labeling/queries/<int:pk>/image/", views.QueryImageView.as_view(), name="labeling-query-image"),
    path("labeling/queries/<int:pk>/context/", views.QueryContextView.as_view(), name="labeling-query-context"),
    path("labeling/queries/<int:pk>/region/", views.QueryRegionView.as_view(), name="labeling-query-region"),
    path("labeling/queries/<int:pk>/suggestion/<str:which>/", views.QuerySuggestionView.as_view(),
         name="labeling-query-suggestion"),
    path("labeling/queries/<int:pk>/superpixels/", views.QuerySuperpixelsView.as_view(),
         name="labeling-query-superpixels"),
    path("labeling/annotations/<int:pk>/mask/", views.AnnotationMaskView.as_view(), name="labeling-annotation-mask"),
]
