from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotator.models import Project
from annotator.services.errors import ServiceError
from annotator.services.exports import export_masks, export_voc


class Command(BaseCommand):
    help = (
        "Write a zip of index-PNG masks in the import layout (classes.json, <domain>/images, <domain>/masks, "
        "manifest.json), keeping original file names. Each image's latest submitted annotation, else its "
        "imported ground truth."
    )

    def add_arguments(self, parser):
        parser.add_argument("output", type=Path, help="the .zip to write")
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--no-images", action="store_true", help="masks and classes.json only")
        parser.add_argument("--only-annotated", action="store_true",
                            help="leave out ground truth that came with the import")
        parser.add_argument("--colour", action="store_true",
                            help="Pascal VOC style palette PNGs: the same class ids, coloured with the class colours")

    def handle(self, *args, output, project, no_images, only_annotated, colour, **options):
        record = Project.objects.filter(name=project).first()
        if record is None:
            raise CommandError(f"there is no project named {project!r}")
        try:
            report = (export_voc if colour else export_masks)(
                project=record, dest=output, include_images=not no_images, include_imported=not only_annotated)
        except ServiceError as exc:
            raise CommandError(str(exc)) from exc
        for name, reason in report.skipped:
            self.stderr.write(f"skipped {name}: {reason}")
        self.stdout.write(self.style.SUCCESS(f"{output}: {report.summary()}"))
