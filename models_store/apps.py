from django.apps import AppConfig


class ModelsStoreConfig(AppConfig):
    name = "models_store"
    verbose_name = "Model store"
