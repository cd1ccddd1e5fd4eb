from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from ..models import LabelClass, Membership, Project
from .errors import ServiceError

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
    ignore = data.get("ignore_index", 255) if isinstance(data, dict) else 255
    if ignore != 255:
        raise ServiceError(f"{path}: ignore_index must be 255, got {ignore}")
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


@transaction.atomic
def project_create(
    *, name: str, classes: Sequence[ClassSpec] = (), created_by: AbstractBaseUser | None = None, **settings
) -> Project:
    if Project.objects.filter(name=name).exists():
        raise ServiceError(f"a project named {name!r} exists already")
    project = Project(name=name, created_by=created_by, **settings)
    project.full_clean()
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
    has_masks = (
        project.images.exclude(gt_mask="").exists()
        or project.images.filter(annotations__isnull=False).exists()
    )
    if has_masks and current != indices:
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
def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership
