"""Reads of ModelVersion rows."""
from __future__ import annotations

from .models import ModelVersion


def model_version_current(*, project, before_round: int | None = None) -> ModelVersion | None:
    """The promoted model that serves the project (the newest one trained before ``before_round``)."""
    versions = project.model_versions.filter(state=ModelVersion.State.PROMOTED)
    if before_round is not None:
        versions = versions.filter(round__number__lt=before_round)
    return versions.order_by("-version").first()
