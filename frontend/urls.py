from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    # Annotator pages (queue, labeling) and lead pages (settings, dashboard) live in their own modules.
    path("", include("frontend.labeling_urls")),
    path("", include("frontend.review_urls")),
    path("", include("frontend.lead_urls")),
]
