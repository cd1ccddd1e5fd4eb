"""Routes of the project, image, round, model and job resources (everything but the labeling endpoints)."""
from django.urls import include, path
from rest_framework.routers import DefaultRouter

from . import views
from .auth import obtain_auth_token

router = DefaultRouter()
router.register("projects", views.ProjectViewSet, basename="project")
router.register("images", views.ImageViewSet, basename="image")
router.register("rounds", views.RoundViewSet, basename="round")
router.register("queries", views.QueryViewSet, basename="query")
router.register("annotations", views.AnnotationViewSet, basename="annotation")
router.register("suggestions", views.SuggestionViewSet, basename="suggestion")
router.register("model-versions", views.ModelVersionViewSet, basename="modelversion")
router.register("jobs", views.JobViewSet, basename="job")

urlpatterns = [
    # POST username + password → {"token": …}; send it as "Authorization: Token …".
    # Too many failures for one user name from one address → 429 (annotator/login_throttle.py).
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("", include(router.urls)),
]
