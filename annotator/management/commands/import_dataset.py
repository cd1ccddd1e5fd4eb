from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotator.models import Image, Project
from annotator.services.errors import ServiceError
from annotator.services.imports import dataset_import
from annotator.services.projects import project_create


class Command(BaseCommand):
    help = (
        "Import images (images/ or the folder itself), optional index masks (masks/STEM.png) "
        "and classes.json into a project. Bad files are reported and skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--project", required=True, help="project name (created if absent)")
        parser.add_argument("--domain", required=True, choices=Image.Domain.values)
        parser.add_argument("--split", choices=Image.Split.values, help="force one split for every image")
        parser.add_argument(
            "--val-count", type=int, default=0,
            help="the last N images in name (frame) order become frozen validation images",
        )
        parser.add_argument("--max-pixels", type=int, help="reject images above this many pixels")

    def handle(self, *args, path, project, domain, split, val_count, max_pixels, **options):
        try:
            record = Project.objects.filter(name=project).first() or project_create(name=project)
            report = dataset_import(
                project=record, path=path, domain=domain, split=split, val_count=val_count, max_pixels=max_pixels
            )
        except ServiceError as exc:
            raise CommandError(str(exc)) from exc
        for name, reason in report.skipped:
            self.stdout.write(f"skipped  {name}: {reason}")
        for name, reason in report.rejected:
            self.stderr.write(f"rejected {name}: {reason}")
        self.stdout.write(self.style.SUCCESS(f"{record.name}: {report.summary()}"))
