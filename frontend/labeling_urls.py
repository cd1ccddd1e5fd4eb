urlpatterns: list = []  # annotator queue and labeling pages
