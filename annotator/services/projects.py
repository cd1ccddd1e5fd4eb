from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from learning.labels import IGNORE_INDEX

from ..models import Annotation, LabelClass, Membership, Project
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
    try:
        specs = class_specs_complete([{**entry, "index": entry["id"]} if "id" in entry else entry
                                      for entry in entries])
    except (KeyError, TypeError, ValueError) as exc:
        raise ServiceError(f"{path}: every class needs a name (and an integer id, if given)") from exc
    if sorted(s.index for s in specs) != list(range(len(specs))):
        raise ServiceError(f"{path}: class ids must be 0..{len(specs) - 1} without gaps")
    return sorted(specs, key=lambda s: s.index)


def default_color(index: int) -> str:
    """The palette colour of class ``index`` (it repeats after ten classes)."""
    return DEFAULT_PALETTE[index % len(DEFAULT_PALETTE)]


def default_hotkey(index: int) -> str:
    """1..9 then 0 for the tenth class; later classes get no digit."""
    if index < 9:
        return str(index + 1)
    return "0" if index == 9 else ""


def class_specs_complete(entries: Sequence[Mapping]) -> list[ClassSpec]:
    """Class specs from ``{"name", "index"?, "color"?, "hotkey"?}`` entries, with the defaults every way in shares.

    The web form, the API and classes.json all come through here: a missing
    index is the entry's position, a missing (or empty) colour the palette's,
    a missing hotkey 1..9, 0 (an empty one stays empty: no hotkey).
    """
    specs = []
    for position, entry in enumerate(entries):
        index = int(entry["index"]) if entry.get("index") is not None else position
        specs.append(ClassSpec(index=index, name=str(entry["name"]).strip(),
                               color=str(entry.get("color") or default_color(index)),
                               hotkey=str(entry["hotkey"] if entry.get("hotkey") is not None
                                          else default_hotkey(index))))
    return specs


# Settings a running project keeps: the next round fine-tunes the previous
# round's weights (same architecture), and pretraining only happens before round 0.
LOCKED_AFTER_START = frozenset({"architecture", "ssl_pretraining", "init_checkpoint", "pretrained",
                                "validation_images", "cold_start_images"})


def project_locked_settings(*, project: Project) -> frozenset[str]:
    """The settings a lead can no longer change: :data:`LOCKED_AFTER_START` once the project has started."""
    return LOCKED_AFTER_START if project.has_started else frozenset()

# Everything a lead may edit with project_update (the state changes only through services).
EDITABLE_FIELDS = frozenset({
    "name", "description", "query_unit", "budget_unit", "budget_per_round", "rounds_total", "strategy",
    "uncertainty_measure", "diversity_weight", "architecture", "adversarial_adaptation", "self_training",
    "consistency_training", "pixel_contrastive", "target_statistics", "ssl_pretraining", "train_height", "train_width",
    "train_steps_initial", "train_steps_per_round", "init_checkpoint", "suggestion_precision", "pretrained",
    "validation_images", "cold_start_images",
    "review_mode", "review_sample_percent", "training_source", "review_blocks_round", "agreement_percent",
    "agreement_threshold", "agreement_boundary_px",
})


def project_check_settings(project: Project) -> None:
    """Field validators plus the combinations a round could not honour, as ServiceError."""
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
    project_refuse_if_archived(project)
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
        try:
            label.full_clean(exclude=["project"], validate_constraints=False)
        except ValidationError as exc:  # a refusal in a sentence (400 / a form error), never a crash
            problems = "; ".join(f"{field} {' '.join(errors)}" for field, errors in exc.message_dict.items())
            raise ServiceError(f"class {label.index} ({label.name!r}): {problems}") from exc
    project.classes.all().delete()
    LabelClass.objects.bulk_create(labels)
    return list(project.classes.all())


@transaction.atomic
def project_update(*, project: Project, **changes) -> Project:
    """Change settings; they apply from the next round on. Architecture and pretraining are fixed once started."""
    project = Project.objects.select_for_update().get(pk=project.pk)
    project_refuse_if_archived(project)
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


def _refuse_while_jobs_run(project: Project, doing: str) -> None:
    from ..models import Job

    active = list(project.jobs.filter(state__in=Job.ACTIVE_STATES).values_list("pk", flat=True))
    if active:
        raise ServiceError(f"{project.name} has job{'s' if len(active) > 1 else ''} "
                           f"{', '.join(map(str, active))} queued or running: cancel "
                           f"{'them' if len(active) > 1 else 'it'} (or let {'them' if len(active) > 1 else 'it'} "
                           f"finish) before you {doing} the project")


@transaction.atomic
def project_set_archived(*, project: Project, archived: bool) -> Project:
    """Archive a project (read-only, out of the project lists, nothing handed out to label) or bring it back.

    Refused while one of its jobs is queued or running: an archived project has nothing running.
    """
    from django.utils import timezone

    project = Project.objects.select_for_update().get(pk=project.pk)
    if archived == (project.archived_at is not None):
        return project
    if archived:
        _refuse_while_jobs_run(project, "archive")
    project.archived_at = timezone.now() if archived else None
    project.save(update_fields=["archived_at"])
    return project


def project_refuse_if_archived(project: Project) -> None:
    """An archived project is read-only: anything that would change it or start work raises ServiceError."""
    if project.archived_at is not None:
        raise ServiceError(f"{project.name} is archived: unarchive it first (its dashboard, or "
                           "POST /api/projects/{id}/unarchive/)")


def project_files(project_id: int) -> list[Path]:
    """Every folder that holds only this project's files: media (images, masks, labels, suggestions, uploads,
    exports) and its model store."""
    from django.conf import settings as django_settings

    from models_store.storage import project_dir

    media = Path(django_settings.MEDIA_ROOT)
    return [media / "projects" / str(project_id), media / "uploads" / f"project-{project_id}",
            media / "exports" / f"project-{project_id}", project_dir(project_id)]


@transaction.atomic
def project_delete(*, project: Project, user: AbstractBaseUser | None = None) -> None:
    """Delete a project with everything in it: rows, image and mask files, exports, model checkpoints.

    Only its leads and staff may (the views check the role; ``user`` None is a management command).
    Refused while one of its jobs is queued or running (a worker would write into what is removed). The
    files go once the rows are gone for good (after the commit), so a failed delete leaves both.
    """
    import shutil

    project = Project.objects.select_for_update().get(pk=project.pk)
    if user is not None and not (user.is_staff or Membership.objects.filter(
            project=project, user=user, role=Membership.Role.LEAD).exists()):
        raise PermissionDenied("Only the project's leads and administrators can delete it.")
    _refuse_while_jobs_run(project, "delete")
    folders = project_files(project.pk)
    # A version protects its parent from being deleted alone; here every version of the project goes.
    Annotation.objects.filter(image__project=project).update(parent=None)
    project.delete()
    transaction.on_commit(lambda: [shutil.rmtree(folder, ignore_errors=True) for folder in folders])
