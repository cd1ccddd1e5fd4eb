from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotator.models import Project
from annotator.services.errors import ServiceError
from annotator.services.exports import export_coco


class Command(BaseCommand):
    help = (
        "Write COCO JSON with one RLE segmentation per image and class (pycocotools format; category id = "
        "class index + 1). file_name is <domain>/images/<original name>, as in the masks zip."
    )

    def add_arguments(self, parser):
        parser.add_argument("output", type=Path, help="the .json to write")
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--only-annotated", action="store_true",
                            help="leave out ground truth that came with the import")

    def handle(self, *args, output, project, only_annotated, **options):
        record = Project.objects.filter(name=project).first()
        if record is None:
            raise CommandError(f"there is no project named {project!r}")
        try:
            report = export_coco(project=record, dest=output, include_imported=not only_annotated)
        except ServiceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"{output}: {report.summary()}"))
