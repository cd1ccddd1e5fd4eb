from django.urls import include, path

urlpatterns = [
    # The labeling endpoints (next query, save, submit, skip) come first: on a path
    # both define, the annotator's route wins. Everything else is in lead_urls.
    path("", include("annotator.api.labeling_urls")),
    path("", include("annotator.api.review_urls")),
    path("", include("annotator.api.lead_urls")),
]
