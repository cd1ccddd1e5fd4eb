urlpatterns: list = []  # project lead pages and the dashboard
