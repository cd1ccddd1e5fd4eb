from rest_framework import serializers

from ..models import Job, LabelClass, Project


class LabelClassSerializer(serializers.ModelSerializer):
    class Meta:
        model = LabelClass
        fields = ["index", "name", "color", "hotkey"]


class ProjectSerializer(serializers.ModelSerializer):
    classes = LabelClassSerializer(many=True, read_only=True)

    class Meta:
        model = Project
        fields = [
            "id", "name", "description", "state", "created_at", "classes",
            "query_unit", "budget_unit", "budget_per_round", "rounds_total", "strategy",
            "uncertainty_measure", "diversity_weight", "architecture", "adversarial_adaptation",
            "self_training", "suggestion_precision",
        ]
        read_only_fields = ["state", "created_at"]


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id", "project", "round", "kind", "state", "phase", "progress", "message", "error",
            "cancel_requested", "attempts", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields
