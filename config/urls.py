from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("annotator.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: the CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (admin, API docs): the app's icon.
    path("favicon.ico", RedirectView.as_view(url=static("frontend/favicon.svg"), permanent=True), name="favicon"),
    path("", include("frontend.urls")),
]

