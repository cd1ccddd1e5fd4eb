"""State changes of ModelVersion rows: each in one function, inside a transaction."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from .models import ModelVersion
from .storage import relative_path


def model_version_register(*, project, round_, directory: Path, meta: dict[str, Any],
                           parent: ModelVersion | None) -> ModelVersion:
    """The ModelVersion row of a stored checkpoint; the existing one if a duplicate delivery got here first.

    One model per round (a unique constraint), numbered in order per project.
    Its state follows the keep-best decision stored in the meta
    (``app_metrics.promotion``, see ``learning.promotion``): promoted, or
    rejected and kept for the record while the previous model serves on.
    """
    app_metrics = meta.get("app_metrics", {})
    promoted = app_metrics.get("promotion", {}).get("promote", True)
    try:
        with transaction.atomic():
            version = (project.model_versions.aggregate(top=Max("version"))["top"] or 0) + 1
            return ModelVersion.objects.create(
                project=project, round=round_, version=version, parent=parent, path=relative_path(directory),
                architecture=meta["architecture"], classes=meta["classes"], metrics=app_metrics,
                train_config=meta.get("training_config", {}),
                labeled_target_pixels=app_metrics.get("labeled_target_pixels", 0),
                state=ModelVersion.State.PROMOTED if promoted else ModelVersion.State.REJECTED,
            )
    except IntegrityError:
        return ModelVersion.objects.get(round=round_)



@transaction.atomic
def model_version_promote(*, model_version: ModelVersion, user=None) -> ModelVersion:
    """Make ``model_version`` the project's current model by hand: promote a rejected one, or roll back.

    Every newer promoted version is set aside (rejected, with the reason), so
    the chosen one is the newest promoted model: the next round fine-tunes
    from it and serves its suggestions. The keep-best decision it overrides
    stays in the record under ``promotion.automatic``.
    """
    versions = {mv.pk: mv for mv in ModelVersion.objects.select_for_update().filter(project_id=model_version.project_id)}
    chosen = versions[model_version.pk]
    who = getattr(user, "username", "") or "a lead"
    if not chosen.is_promoted:
        _record(chosen, promote=True, reason=f"promoted by hand by {who}", rule="manual")
    for newer in versions.values():
        if newer.version > chosen.version and newer.is_promoted:
            _record(newer, promote=False, reason=f"set aside by {who}: rolled back to v{chosen.version}", rule="manual")
    return chosen


def _record(version: ModelVersion, *, promote: bool, reason: str, rule: str) -> None:
    metrics = dict(version.metrics or {})
    automatic = metrics.get("promotion") or {}
    metrics["promotion"] = {"promote": promote, "reason": reason, "rule": rule,
                            "automatic": automatic.get("automatic", automatic)}
    version.metrics = metrics
    version.state = ModelVersion.State.PROMOTED if promote else ModelVersion.State.REJECTED
    version.save(update_fields=["metrics", "state"])


def model_version_set_aside(*, model_version: ModelVersion, reason: str) -> ModelVersion:
    """Reject a model that cannot serve (e.g. its checkpoint is corrupt), keeping the reason."""
    _record(model_version, promote=False, reason=reason, rule="unusable")
    return model_version
