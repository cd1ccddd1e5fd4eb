"""Versioned model checkpoints. The files live under MODELS_STORE_ROOT, written atomically."""
from __future__ import annotations

from django.db import models


class ModelVersion(models.Model):
    class State(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        PROMOTED = "promoted", "Promoted"
        REJECTED = "rejected", "Rejected"

    project = models.ForeignKey("annotator.Project", on_delete=models.CASCADE, related_name="model_versions")
    round = models.ForeignKey(
        "annotator.Round", null=True, blank=True, on_delete=models.SET_NULL, related_name="trained_models",
        help_text="The round whose training produced this model.",
    )
    version = models.PositiveIntegerField()
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    # Relative to MODELS_STORE_ROOT, so the store can move between machines.
    path = models.CharField(max_length=500)
    architecture = models.CharField(max_length=64)
    classes = models.JSONField(help_text="Class names in index order")
    metrics = models.JSONField(default=dict, blank=True)
    train_config = models.JSONField(default=dict, blank=True)
    labeled_target_pixels = models.BigIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CANDIDATE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="modelversion_unique_version"),
            # A round trains exactly one model, however often its task is delivered.
            models.UniqueConstraint(fields=["round"], name="modelversion_unique_round"),
        ]

    def __str__(self) -> str:
        return f"{self.project} model v{self.version}"

    @property
    def is_promoted(self) -> bool:
        return self.state == self.State.PROMOTED

    @property
    def promotion_reason(self) -> str:
        """Why keep-best promoted or rejected this model (or who changed it by hand)."""
        return str((self.metrics or {}).get("promotion", {}).get("reason", ""))

    @property
    def miou(self) -> float | None:
        value = (self.metrics or {}).get("miou")
        return float(value) if value is not None else None
