"""Review endpoints under /api/review/: the queue, one review, its decisions, and the dashboard numbers."""
from django.urls import path

from . import review_views as views

urlpatterns = [
    path("review/projects/<int:project_pk>/reviews/", views.ReviewListView.as_view(), name="review-list"),
    path("review/projects/<int:project_pk>/summary/", views.ReviewSummaryView.as_view(), name="review-summary"),
    path("review/projects/<int:project_pk>/agreements/", views.AgreementListView.as_view(), name="review-agreements"),
    path("review/items/<int:pk>/", views.ReviewDetailView.as_view(), name="review-detail"),
    path("review/items/<int:pk>/accept/", views.ReviewAcceptView.as_view(), name="review-accept"),
    path("review/items/<int:pk>/reject/", views.ReviewRejectView.as_view(), name="review-reject"),
    path("review/items/<int:pk>/fix/", views.ReviewFixView.as_view(), name="review-fix"),
]
