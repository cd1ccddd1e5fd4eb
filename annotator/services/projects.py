from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from learning.labels import IGNORE_INDEX

from ..models import LabelClass, Membership, Project
from .errors import PermissionDenied, ServiceError
from .init_checkpoints import init_checkpoint_resolve

DEFAULT_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)


@dataclass(frozen=True)
class ClassSpec:
    index: int
    name: str
    color: str
    hotkey: str = ""


def class_specs_from_json(path: Path) -> list[ClassSpec]:
    """Read a classes.json of the import layout: {"classes": [{"id", "name", "color"}], "ignore_index": 255}."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ServiceError(f"{path}: cannot read the class list ({exc})") from exc
    entries = data.get("classes") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ServiceError(f"{path}: expected a non-empty 'classes' list")
    ignore = data.get("ignore_index", IGNORE_INDEX) if isinstance(data, dict) else IGNORE_INDEX
    if ignore != IGNORE_INDEX:
        raise ServiceError(f"{path}: ignore_index must be {IGNORE_INDEX}, got {ignore}")
    specs = []
    for position, entry in enumerate(entries):
        index = int(entry.get("id", position))
        specs.append(
            ClassSpec(
                index=index,
                name=str(entry["name"]),
                color=str(entry.get("color") or DEFAULT_PALETTE[index % len(DEFAULT_PALETTE)]),
                hotkey=str(entry.get("hotkey", default_hotkey(index))),
            )
        )
    if sorted(s.index for s in specs) != list(range(len(specs))):
        raise ServiceError(f"{path}: class ids must be 0..{len(specs) - 1} without gaps")
    return sorted(specs, key=lambda s: s.index)


def default_hotkey(index: int) -> str:
    """1..9 then 0 for the tenth class; later classes get no digit."""
    if index < 9:
        return str(index + 1)
    return "0" if index == 9 else ""


# Settings a running project keeps: the next round fine-tunes the previous
# round's weights (same architecture), and pretraining only happens before round 0.
LOCKED_AFTER_START = frozenset({"architecture", "ssl_pretraining", "init_checkpoint", "pretrained",
                                "validation_images"})


def project_locked_settings(*, project: Project) -> frozenset[str]:
    """The settings a lead can no longer change: :data:`LOCKED_AFTER_START` once the project has started."""
    return LOCKED_AFTER_START if project.has_started else frozenset()

# Everything a lead may edit with project_update (the state changes only through services).
EDITABLE_FIELDS = frozenset({
    "name", "description", "query_unit", "budget_unit", "budget_per_round", "rounds_total", "strategy",
    "uncertainty_measure", "diversity_weight", "architecture", "adversarial_adaptation", "self_training",
    "consistency_training", "pixel_contrastive", "ssl_pretraining", "train_height", "train_width",
    "train_steps_initial", "train_steps_per_round", "init_checkpoint", "suggestion_precision", "pretrained",
    "validation_images",
})


def project_check_settings(project: Project) -> None:
    """Field validators plus the combinations a round could not honour, as ServiceError."""
    from django.core.exceptions import ValidationError

    try:
        project.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        raise ServiceError("; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items()))
    unit, budget = project.budget_unit, project.budget_per_round
    if unit == Project.BudgetUnit.PIXEL_PERCENT and not 0 < budget <= 100:
        raise ServiceError("a budget in % of target pixels must be above 0 and at most 100")
    if unit in (Project.BudgetUnit.IMAGES, Project.BudgetUnit.REGIONS) and (budget < 1 or budget != int(budget)):
        raise ServiceError(f"a budget in {unit} must be a whole number of at least 1")
    if unit == Project.BudgetUnit.REGIONS and project.query_unit != Project.QueryUnit.REGION:
        raise ServiceError("a budget in regions needs region queries")
    if unit == Project.BudgetUnit.IMAGES and project.query_unit != Project.QueryUnit.IMAGE:
        raise ServiceError("a budget in images needs image queries (or choose % of pixels or regions)")
    if (project.train_height == 0) != (project.train_width == 0):
        raise ServiceError("set both training height and width, or leave both 0 to take them from the images")
    if 0 < min(project.train_height, project.train_width) < 32:
        raise ServiceError("training height and width must be at least 32 pixels (or both 0: from the images)")
    if project.strategy == Project.Strategy.REGION and project.query_unit != Project.QueryUnit.REGION:
        raise ServiceError("the region strategy (RIPU) needs region queries")
    # Fixed once started (a file that disappears later must not block other settings).
    if project.init_checkpoint and (project.pk is None or not project.has_started):
        project.init_checkpoint = init_checkpoint_resolve(project.init_checkpoint, project=project)


def project_may_create(user: AbstractBaseUser) -> bool:
    """Whether ``user`` may create projects (``MASKLOOP_PROJECT_CREATORS``)."""
    from django.conf import settings as django_settings

    if django_settings.MASKLOOP_PROJECT_CREATORS == "everyone":
        return bool(user.is_authenticated)
    return bool(user.is_staff or user.has_perm("annotator.add_project"))


@transaction.atomic
def project_create(
    *, name: str, classes: Sequence[ClassSpec] = (), created_by: AbstractBaseUser | None = None, **settings
) -> Project:
    """A new project; ``created_by`` (None for management commands) must be allowed to create one and leads it."""
    if created_by is not None and not project_may_create(created_by):
        raise PermissionDenied("You may not create projects here: ask an administrator "
                               "(MASKLOOP_PROJECT_CREATORS=permitted).")
    name = name.strip()
    if not name:
        raise ServiceError("a project needs a name")
    if Project.objects.filter(name=name).exists():
        raise ServiceError(f"a project named {name!r} exists already")
    unknown = set(settings) - EDITABLE_FIELDS
    if unknown:
        raise ServiceError(f"unknown project settings: {sorted(unknown)}")
    project = Project(name=name, created_by=created_by, **settings)
    project_check_settings(project)
    project.save()
    if classes:
        project_set_classes(project=project, classes=classes)
    if created_by is not None:
        membership_set(project=project, user=created_by, role=Membership.Role.LEAD)
    return project


@transaction.atomic
def project_set_classes(*, project: Project, classes: Sequence[ClassSpec]) -> list[LabelClass]:
    """Define the class list. Once masks exist, indices are fixed: only names, colours, hotkeys change.

    Rows are replaced wholesale (nothing references a LabelClass row: masks hold
    indices), which lets two classes swap names or hotkeys in one call.
    """
    indices = sorted(spec.index for spec in classes)
    if indices != list(range(len(indices))):
        raise ServiceError("class indices must be 0..N-1 without gaps")
    for field in ("name", "hotkey"):
        values = [getattr(spec, field) for spec in classes if getattr(spec, field)]
        if len(values) != len(set(values)):
            raise ServiceError(f"two classes share the {field} {sorted(v for v in values if values.count(v) > 1)[0]!r}")
    current = sorted(project.classes.select_for_update().values_list("index", flat=True))
    if project.has_masks and current != indices:
        raise ServiceError("masks exist already: classes can be renamed or recoloured, not added or removed")
    labels = [
        LabelClass(project=project, index=spec.index, name=spec.name, color=spec.color, hotkey=spec.hotkey)
        for spec in classes
    ]
    for label in labels:
        label.full_clean(exclude=["project"], validate_constraints=False)
    project.classes.all().delete()
    LabelClass.objects.bulk_create(labels)
    return list(project.classes.all())


@transaction.atomic
def project_update(*, project: Project, **changes) -> Project:
    """Change settings; they apply from the next round on. Architecture and pretraining are fixed once started."""
    project = Project.objects.select_for_update().get(pk=project.pk)
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ServiceError(f"these settings cannot be edited: {sorted(unknown)}")
    changed = {field for field, value in changes.items() if getattr(project, field) != value}
    locked = changed & project_locked_settings(project=project)
    if locked:
        raise ServiceError(f"{', '.join(sorted(locked))} cannot change once the project has started")
    if "name" in changed:
        changes["name"] = changes["name"].strip()
        if not changes["name"]:
            raise ServiceError("a project needs a name")
        if Project.objects.filter(name=changes["name"]).exclude(pk=project.pk).exists():
            raise ServiceError(f"a project named {changes['name']!r} exists already")
    for field, value in changes.items():
        setattr(project, field, value)
    project_check_settings(project)
    project.save()
    return project


def _lead_count(project: Project) -> int:
    return Membership.objects.filter(project=project, role=Membership.Role.LEAD).count()


@transaction.atomic
def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise ServiceError(f"role must be one of {Membership.Role.values}, not {role!r}")
    current = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if current is not None and current.role == Membership.Role.LEAD and role != Membership.Role.LEAD:
        if _lead_count(project) == 1:
            raise ServiceError(f"{user} is the project's only lead: make someone else lead first")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def membership_remove(*, project: Project, user: AbstractBaseUser) -> None:
    """Take a user off a project. Their queries go back to the queue; their annotations stay."""
    from ..models import Query

    membership = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if membership is None:
        raise ServiceError(f"{user} is not a member of {project}")
    if membership.role == Membership.Role.LEAD and _lead_count(project) == 1:
        raise ServiceError(f"{user} is the project's only lead: make someone else lead first")
    membership.delete()
    Query.objects.filter(round__project=project, assignee=user, status=Query.Status.PENDING).update(
        assignee=None, locked_until=None
    )
