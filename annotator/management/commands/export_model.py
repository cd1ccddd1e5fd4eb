from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotator.models import Project
from annotator.services.errors import ServiceError
from annotator.services.exports import export_model


class Command(BaseCommand):
    help = (
        "Write a model version as a zip: the checkpoint directory (weights + meta.json) under model/ and "
        "maskloop.json with its metrics, classes and training config. Default: the latest promoted version."
    )

    def add_arguments(self, parser):
        parser.add_argument("output", type=Path, help="the .zip to write")
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--model-version", type=int, help="model version number (default: latest promoted)")

    def handle(self, *args, output, project, model_version, **options):
        version = model_version
        from models_store.models import ModelVersion

        record = Project.objects.filter(name=project).first()
        if record is None:
            raise CommandError(f"there is no project named {project!r}")
        versions = ModelVersion.objects.filter(project=record)
        chosen = (versions.filter(version=version) if version is not None
                  else versions.filter(state=ModelVersion.State.PROMOTED)).order_by("-version").first()
        if chosen is None:
            raise CommandError(f"{record.name} has no {'version %d' % version if version else 'promoted model'}")
        try:
            export_model(model_version=chosen, dest=output)
        except ServiceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"{output}: model v{chosen.version} ({chosen.architecture})"))
