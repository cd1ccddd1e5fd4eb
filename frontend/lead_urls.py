"""Project lead pages and the dashboard (all keyed by the project's pk)."""
from django.urls import path

from . import lead_views as views

urlpatterns = [
    path("projects/new/", views.project_create_view, name="project-create"),
    path("projects/<int:pk>/dashboard/", views.project_dashboard_view, name="project-dashboard"),
    path("projects/<int:pk>/dashboard/charts/<slug:name>.png", views.project_chart_view, name="project-chart"),
    path("projects/<int:pk>/settings/", views.project_settings_view, name="project-settings"),
    path("projects/<int:pk>/classes/", views.project_classes_view, name="project-classes"),
    path("projects/<int:pk>/members/", views.project_members_view, name="project-members"),
    path("projects/<int:pk>/images/", views.project_images_view, name="project-images"),
    path("projects/<int:pk>/images/split/", views.project_images_split_view, name="project-images-split"),
    path("projects/<int:pk>/images/browse/", views.project_browse_view, name="project-browse"),
    path("projects/<int:pk>/images/<int:image_pk>/", views.project_image_view, name="project-image"),
    path("projects/<int:pk>/images/request/", views.project_images_request_view, name="project-images-request"),
    path("projects/<int:pk>/start/", views.project_start_view, name="project-start"),
    path("projects/<int:pk>/rounds/<int:number>/close/", views.round_close_view, name="round-close"),
    path("projects/<int:pk>/jobs/<int:job_pk>/<slug:action>/", views.job_action_view, name="job-action"),
    path("projects/<int:pk>/models/<int:version_pk>/promote/", views.model_version_promote_view,
         name="modelversion-promote"),
    path("projects/<int:pk>/export/", views.project_export_view, name="project-export"),
    path("projects/<int:pk>/archive/", views.project_archive_view, name="project-archive"),
    path("projects/<int:pk>/delete/", views.project_delete_view, name="project-delete"),
]
