"""Serializers: the shapes the API reads and writes. Writes go through services, never ``serializer.save()``."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from models_store.models import ModelVersion

from ..models import Annotation, Image, Job, LabelClass, Membership, Project, Query, Round, Suggestion
from ..selectors import job_error_for
from ..selectors_jobs import job_badge, job_queue, job_timing_text, job_wait_note, round_progress
from ..services.errors import ServiceError
from ..services.exports import EXPORT_FORMATS
from ..services.init_checkpoints import init_checkpoint_resolve
from ..services.projects import EDITABLE_FIELDS


class LabelClassSerializer(serializers.ModelSerializer):
    """A class; on writes only the name is required: index, colour and hotkey default like the web form's."""

    index = serializers.IntegerField(min_value=0, max_value=254, required=False,
                                     help_text="Default: the class's position in the list.")

    class Meta:
        model = LabelClass
        fields = ["index", "name", "color", "hotkey"]
        extra_kwargs = {
            "color": {"required": False, "help_text": "#rrggbb; default: the palette colour of the index."},
            "hotkey": {"required": False, "help_text": "One key; default 1..9, 0 (an empty string: none)."},
        }
        # Uniqueness is checked across the whole list by project_set_classes.
        validators: list = []


PROJECT_SETTINGS = [
    "query_unit", "budget_unit", "budget_per_round", "rounds_total", "strategy", "uncertainty_measure",
    "diversity_weight", "architecture", "adversarial_adaptation", "self_training", "consistency_training",
    "pixel_contrastive", "target_statistics", "ssl_pretraining", "train_height", "train_width", "train_steps_initial",
    "train_steps_per_round", "init_checkpoint", "suggestion_precision", "pretrained", "validation_images",
    "cold_start_images",
    "review_mode", "review_sample_percent", "training_source", "review_blocks_round", "agreement_percent",
    "agreement_threshold", "agreement_boundary_px",
]
assert set(PROJECT_SETTINGS) | {"name", "description"} == EDITABLE_FIELDS


class ProjectSerializer(serializers.ModelSerializer):
    classes = LabelClassSerializer(many=True, required=False,
                                   help_text="On create only; change them later with PUT /classes/.")
    role = serializers.SerializerMethodField(help_text="Your role: lead, annotator (staff see lead).")
    current_round = serializers.IntegerField(read_only=True, allow_null=True, required=False)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "state", "created_at", "archived_at", "role", "current_round",
                  "classes", *PROJECT_SETTINGS]
        read_only_fields = ["state", "created_at", "archived_at"]
        validators: list = []  # name uniqueness: the service says it in a sentence

    def validate_init_checkpoint(self, value: str) -> str:
        if not value or (self.instance is not None and value == self.instance.init_checkpoint):
            return value  # unchanged: project_update decides (it is fixed once the project has started)
        try:
            return init_checkpoint_resolve(value, project=self.instance)
        except ServiceError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def get_role(self, project) -> str | None:
        user = self.context["request"].user
        if user.is_staff:
            return Membership.Role.LEAD
        role = getattr(project, "role", None)
        if role is None:
            role = project.memberships.filter(user=user).values_list("role", flat=True).first()
        return role


class ProjectUpdateSerializer(ProjectSerializer):
    class Meta(ProjectSerializer.Meta):
        read_only_fields = ["state", "created_at", "archived_at", "classes"]
        extra_kwargs = {"name": {"required": False}}


class MembershipSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.pk", read_only=True)
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["user_id", "username", "role"]

    def validate_username(self, value: str):
        user = get_user_model().objects.filter(username=value).first()
        if user is None:
            raise serializers.ValidationError(f"there is no user {value!r}")
        return user


class ReadinessSerializer(serializers.Serializer):
    ready = serializers.BooleanField()
    problems = serializers.ListField(child=serializers.CharField())


class ImageSerializer(serializers.ModelSerializer):
    has_ground_truth = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = ["id", "project", "original_name", "width", "height", "checksum", "domain", "split",
                  "has_ground_truth", "created_at"]
        read_only_fields = fields

    def get_has_ground_truth(self, image) -> bool:
        return bool(image.gt_mask)


class ImageSplitSerializer(serializers.Serializer):
    image_ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=False)
    split = serializers.ChoiceField(choices=Image.Split.choices)


class ImageSplitResultSerializer(serializers.Serializer):
    changed = serializers.IntegerField()


class ImportSerializer(serializers.Serializer):
    domain = serializers.ChoiceField(choices=Image.Domain.choices)
    val_count = serializers.IntegerField(min_value=0, default=0,
                                         help_text="The last N target images (name order) become validation images.")
    archive = serializers.FileField(required=False, help_text="A zip: images/ (+ masks/, classes.json).")
    folder = serializers.CharField(required=False, allow_blank=True,
                                   help_text="Or an absolute folder on the server (under MASKLOOP_IMPORT_ROOTS).")


class UploadSerializer(serializers.Serializer):
    images = serializers.ListField(child=serializers.FileField(allow_empty_file=True), allow_empty=False,
                                   help_text="Image files (JPEG, PNG, WebP, TIFF, BMP); a few per request.")
    masks = serializers.ListField(child=serializers.FileField(allow_empty_file=True), required=False, default=list,
                                  help_text="Optional index PNGs, matched to the images by file name without "
                                            "extension.")
    domain = serializers.ChoiceField(choices=Image.Domain.choices, default=Image.Domain.TARGET)
    split = serializers.ChoiceField(choices=Image.Split.choices, required=False,
                                    help_text="Target images: pool (default) or val (with masks, before the start); "
                                              "source images: train (default, with masks).")


class UploadResultSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The name the image is stored under (made safe).")
    state = serializers.ChoiceField(choices=["imported", "skipped", "rejected"])
    detail = serializers.CharField(help_text="Why it was skipped or rejected.")
    image_id = serializers.IntegerField(allow_null=True)
    mask = serializers.CharField(help_text="The mask stored with it, if one was sent.")


class UploadAnswerSerializer(serializers.Serializer):
    results = UploadResultSerializer(many=True)
    imported = serializers.IntegerField()
    skipped = serializers.IntegerField()
    rejected = serializers.IntegerField()


class LabelRequestSerializer(serializers.Serializer):
    image_ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=False)


class ExportSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=sorted(EXPORT_FORMATS))
    include_imported = serializers.BooleanField(
        default=True, help_text="Also export ground truth that came with the import (source, validation).")


class RoundSerializer(serializers.ModelSerializer):
    queries_total = serializers.IntegerField(read_only=True)
    queries_pending = serializers.IntegerField(read_only=True)
    status = serializers.SerializerMethodField(
        help_text='The state as people see it: "Training", "Training (queued)", "Training stopped" (its job was '
                  'cancelled or failed: nothing runs until a retry), "Labeling", …')
    status_detail = serializers.SerializerMethodField(
        help_text="While training or selecting: progress with elapsed time and ETA, why it waits, or why nothing "
                  "runs; empty otherwise.")

    class Meta:
        model = Round
        fields = ["id", "project", "number", "state", "status", "status_detail", "model_version",
                  "budget_planned_pixels", "stats", "queries_total", "queries_pending", "created_at", "opened_at",
                  "closed_at"]
        read_only_fields = fields

    def _progress(self, round_):
        cache = self.context.setdefault("_round_progress", {})
        if round_.pk not in cache:
            cache[round_.pk] = round_progress(round_=round_)
        return cache[round_.pk]

    def get_status(self, round_) -> str:
        progress = self._progress(round_)
        return progress.label if progress else Round.State(round_.state).label

    def get_status_detail(self, round_) -> str:
        progress = self._progress(round_)
        return progress.detail if progress else ""


# Query.Kind as plain text: as an enum its name would collide with Job.Kind's in the schema.
QUERY_KIND_HELP = "label (trains the model) or validation (measures it, never trains it)"


class QuerySerializer(serializers.ModelSerializer):
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True)
    kind = serializers.CharField(read_only=True, help_text=QUERY_KIND_HELP)
    round = serializers.PrimaryKeyRelatedField(read_only=True, help_text="The round's id (for /api/rounds/{id}/).")
    round_number = serializers.IntegerField(source="round.number", read_only=True,
                                            help_text="The round's number in its project (0 = the first round).")

    class Meta:
        model = Query
        fields = ["id", "round", "round_number", "image", "kind", "region_key", "region_bbox", "pixels", "score",
                  "priority", "status", "assignee", "locked_until", "skip_reason", "time_spent_seconds", "created_at",
                  "submitted_at"]
        read_only_fields = fields


class AnnotationSerializer(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Annotation
        fields = ["id", "image", "query", "version", "parent", "author", "created_at", "time_spent_seconds",
                  "is_submitted", "labeled_pixels", "suggestion_dice", "mask_checksum"]
        read_only_fields = fields


class SuggestionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Suggestion
        fields = ["id", "query", "model_version", "coverage", "precision", "created_at"]
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    round_number = serializers.IntegerField(source="round.number", read_only=True, allow_null=True)
    promotion_reason = serializers.CharField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "project", "version", "round", "round_number", "parent", "architecture", "classes",
                  "metrics", "train_config", "labeled_target_pixels", "state", "promotion_reason", "created_at"]
        read_only_fields = fields


class JobSerializer(serializers.ModelSerializer):
    round_number = serializers.IntegerField(source="round.number", read_only=True, allow_null=True)
    is_final = serializers.BooleanField(read_only=True)
    error = serializers.SerializerMethodField(help_text="Why it failed: the traceback for staff, one line for others.")
    state_label = serializers.SerializerMethodField(
        help_text='The badge text: "Queued", "Running", …, "Succeeded with warnings" (an import that rejected files).')
    badge_state = serializers.SerializerMethodField(help_text="The badge's kind: a state, or warning.")
    queue = serializers.SerializerMethodField(help_text="The Celery queue its (next) task runs in.")
    wait_note = serializers.SerializerMethodField(
        help_text="Why a queued job has not started (its queue, the jobs ahead of it); empty otherwise.")
    timing = serializers.SerializerMethodField(help_text='"ran 12 s · waited 4 min 30 s".')
    kind_label = serializers.CharField(source="get_kind_display", read_only=True, help_text="The kind, in words.")

    class Meta:
        model = Job
        fields = ["id", "project", "round", "round_number", "kind", "kind_label", "state", "state_label",
                  "badge_state", "is_final", "phase", "progress", "message", "wait_note", "queue", "timing", "error",
                  "cancel_requested", "attempts", "created_at", "started_at", "finished_at"]
        read_only_fields = fields

    def get_state_label(self, job) -> str:
        return job_badge(job=job)[0]

    def get_badge_state(self, job) -> str:
        return job_badge(job=job)[1]

    def get_queue(self, job) -> str:
        return job_queue(job=job)

    def get_wait_note(self, job) -> str:
        return job_wait_note(job=job)

    def get_timing(self, job) -> str:
        return job_timing_text(job=job)


    def get_error(self, job) -> str:
        request = self.context.get("request")  # absent when a view echoes a job it just queued: no traceback then
        return job_error_for(job=job, user=getattr(request, "user", None))


class JobDetailSerializer(JobSerializer):
    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "log"]
        read_only_fields = fields


# --- Metrics (mirrors annotator.selectors.ProjectMetrics) -----------------------------------------------------


class RoundMetricsSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    state = serializers.CharField()
    model_version_id = serializers.IntegerField(allow_null=True)
    model_version = serializers.IntegerField(allow_null=True)
    miou = serializers.FloatField(allow_null=True)
    pixel_accuracy = serializers.FloatField(allow_null=True)
    per_class_iou = serializers.DictField(child=serializers.FloatField(allow_null=True),
                                          help_text="Class name → IoU; null = n/a (class absent from both).")
    labeled_target_fraction = serializers.FloatField(
        allow_null=True, help_text="Share of the target pool labeled before this round: what its model trained on.")
    labeled_target_pixels = serializers.IntegerField(allow_null=True)
    train_seconds = serializers.FloatField(allow_null=True)
    strategy = serializers.CharField(allow_null=True)
    diversity_weight = serializers.FloatField(allow_null=True)
    budget_planned_pixels = serializers.IntegerField()
    labeled_pixels = serializers.IntegerField(
        help_text="Pixels this round's answers labeled (non-void pixels of the latest trainable versions; the "
                  "rounds add up to labeled_pixels_total).")
    queries = serializers.IntegerField()
    submitted = serializers.IntegerField()
    skipped = serializers.IntegerField()
    pending = serializers.IntegerField()
    suggestion_precision = serializers.FloatField(allow_null=True)
    suggestion_coverage = serializers.FloatField(allow_null=True)
    suggestion_dice_mean = serializers.FloatField(allow_null=True)
    suggestion_dice_median = serializers.FloatField(allow_null=True)
    suggestion_dice_count = serializers.IntegerField()


class AnnotatorThroughputSerializer(serializers.Serializer):
    username = serializers.CharField()
    submitted = serializers.IntegerField()
    skipped = serializers.IntegerField()
    active_hours = serializers.FloatField()
    queries_per_hour = serializers.FloatField(allow_null=True)
    median_seconds = serializers.FloatField(allow_null=True)
    labeled_pixels = serializers.IntegerField()


class ProjectMetricsSerializer(serializers.Serializer):
    classes = serializers.ListField(child=serializers.CharField())
    rounds = RoundMetricsSerializer(many=True)
    annotators = AnnotatorThroughputSerializer(many=True)
    baseline_miou = serializers.FloatField(allow_null=True, help_text="Round 0: no target labels.")
    latest_miou = serializers.FloatField(allow_null=True)
    target_pool_pixels = serializers.IntegerField()
    validation_images = serializers.IntegerField()
    labeled_pixels_total = serializers.IntegerField(help_text="Target pool pixels people have labeled.")
    labeled_fraction = serializers.FloatField(allow_null=True, help_text="labeled_pixels_total / target_pool_pixels")
    budget_note = serializers.CharField()
    rounds_total = serializers.IntegerField()
    notes = serializers.ListField(child=serializers.CharField())
