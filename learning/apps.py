from django.apps import AppConfig


class LearningConfig(AppConfig):
    """Registers learning.tasks with Celery; the ML modules themselves never import Django."""

    name = "learning"
    verbose_name = "Learning"
