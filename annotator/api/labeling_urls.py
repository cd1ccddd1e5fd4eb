urlpatterns: list = []  # annotator endpoints: next query, image, suggestion, annotations
