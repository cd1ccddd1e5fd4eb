from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from annotator.demo import write_demo_dataset
from annotator.models import Membership, Project
from annotator.services.imports import dataset_import
from annotator.services.projects import membership_set, project_create

DEMO_PROJECT = "Demo: streets day → dusk"
DEMO_USERS = (
    ("admin", True, None),
    ("lead", False, Membership.Role.LEAD),
    ("annotator", False, Membership.Role.ANNOTATOR),
)


class Command(BaseCommand):
    help = "Create the demo project (synthetic day → dusk street scenes) and its users, if absent."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="maskloop-demo", help="password of the demo users")
        parser.add_argument("--source", type=int, default=48, help="labeled day images")
        parser.add_argument("--target", type=int, default=24, help="dusk images (the last 8 become validation)")

    def handle(self, *args, password, source, target, **options):
        users = {name: self._user(name, staff, password) for name, staff, _ in DEMO_USERS}
        project = Project.objects.filter(name=DEMO_PROJECT).first()
        if project is None:
            project = self._create(users, source, target)
        self.stdout.write(self.style.SUCCESS(f"Demo project: {project.name} ({project.images.count()} images)"))
        self.stdout.write("Log in at http://127.0.0.1:8000/ as one of:")
        for name, staff, role in DEMO_USERS:
            self.stdout.write(f"  {name:<10} / {password:<14} {'admin (staff)' if staff else role}")

    def _user(self, name: str, staff: bool, password: str):
        user, created = get_user_model().objects.get_or_create(username=name, defaults={"is_staff": staff})
        if created:
            user.is_superuser = staff
            user.set_password(password)
            user.save()
        return user

    @transaction.atomic
    def _create(self, users, source: int, target: int) -> Project:
        root = write_demo_dataset(Path(settings.VAR_DIR) / "demo-dataset", source=source, target=target)
        project = project_create(
            name=DEMO_PROJECT,
            description="Synthetic street scenes: labeled daytime source, unlabeled dusk target. "
            "Small enough to train on a CPU in minutes.",
            created_by=users["lead"],
            architecture=Project.Architecture.LRASPP_MOBILENET,
            train_height=120, train_width=160, train_steps_initial=300, train_steps_per_round=120,
            query_unit=Project.QueryUnit.REGION, budget_unit=Project.BudgetUnit.PIXEL_PERCENT,
            budget_per_round=3.0, rounds_total=4,
        )
        membership_set(project=project, user=users["annotator"], role=Membership.Role.ANNOTATOR)
        for domain, val in (("source", 0), ("target", max(2, target // 3))):
            report = dataset_import(project=project, path=root / domain, domain=domain, val_count=val)
            self.stdout.write(f"  {domain}: {report.summary()}")
        # The target's imported masks are ground truth for validation only; pool images
        # keep theirs out of the app so that annotators, not the import, label them.
        for image in project.images.filter(domain="target", split="pool"):
            image.gt_mask.delete(save=True)
        return project
