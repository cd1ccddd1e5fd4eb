urlpatterns: list = []  # lead endpoints: classes, images, rounds, metrics, exports
