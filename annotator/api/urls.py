from django.urls import include, path
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("projects", views.ProjectViewSet, basename="project")
router.register("jobs", views.JobViewSet, basename="job")

urlpatterns = [
    # Labeling (next query, annotations, suggestions) and lead resources register their own routes.
    path("", include("annotator.api.labeling_urls")),
    path("", include("annotator.api.lead_urls")),
    path("", include(router.urls)),
]
