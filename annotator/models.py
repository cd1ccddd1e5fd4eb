"""maskloop's data model: the invariants live here, the workflows in services/."""
from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from learning.labels import MAX_CLASSES


class Project(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        FINISHED = "finished", "Finished"

    class BudgetUnit(models.TextChoices):
        IMAGES = "images", "Images per round"
        REGIONS = "regions", "Regions per round"
        PIXEL_PERCENT = "pixel_percent", "% of target pixels per round"

    class QueryUnit(models.TextChoices):
        IMAGE = "image", "Whole images"
        REGION = "region", "Regions (superpixels)"

    class Strategy(models.TextChoices):
        ADAPTIVE = "adaptive", "Adaptive: diversity first, uncertainty as the model improves"
        RANDOM = "random", "Random (baseline)"
        ENTROPY = "entropy", "Uncertainty only"
        ENTROPY_DIVERSITY = "entropy_diversity", "Uncertainty + diversity"
        REGION = "region", "Region uncertainty × impurity (RIPU)"

    class Architecture(models.TextChoices):
        DEEPLABV3_MOBILENET = "deeplabv3_mobilenet_v3_large", "DeepLabV3 MobileNetV3-Large (CPU friendly)"
        LRASPP_MOBILENET = "lraspp_mobilenet_v3_large", "LR-ASPP MobileNetV3-Large (fastest)"
        DEEPLABV3_RESNET50 = "deeplabv3_resnet50", "DeepLabV3 ResNet-50 (GPU)"
        DEEPLABV3_RESNET101 = "deeplabv3_resnet101", "DeepLabV3 ResNet-101 (GPU)"

    class UncertaintyMeasure(models.TextChoices):
        ENTROPY = "entropy", "Entropy"
        MARGIN = "margin", "Margin (top-1 − top-2)"
        LEAST_CONFIDENCE = "least_confidence", "Least confidence"

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Archived: kept read-only and out of the project lists; nothing is handed out to label (services/projects.py).
    archived_at = models.DateTimeField(null=True, blank=True)

    # Query budget and schedule
    query_unit = models.CharField(max_length=16, choices=QueryUnit.choices, default=QueryUnit.REGION)
    budget_unit = models.CharField(max_length=16, choices=BudgetUnit.choices, default=BudgetUnit.PIXEL_PERCENT)
    budget_per_round = models.FloatField(default=1.0, validators=[MinValueValidator(0.0)])
    rounds_total = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1)])
    strategy = models.CharField(max_length=32, choices=Strategy.choices, default=Strategy.ADAPTIVE)
    uncertainty_measure = models.CharField(
        max_length=32, choices=UncertaintyMeasure.choices, default=UncertaintyMeasure.ENTROPY
    )
    diversity_weight = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="0 = pure uncertainty, 1 = pure diversity (the adaptive strategy moves it by itself).",
    )

    # Model and training
    architecture = models.CharField(
        max_length=64, choices=Architecture.choices, default=Architecture.DEEPLABV3_MOBILENET
    )
    adversarial_adaptation = models.BooleanField(default=True, help_text="Output-space adversarial adaptation")
    # Off by default: on CamVid day → dusk CBST pseudo-labels cost 2–8 mIoU (docs/BENCHMARKS.md).
    self_training = models.BooleanField(default=False, help_text="Confident pseudo-labels (class-wise thresholds)")
    # Off by default: with target labels it added nothing on CamVid (+0.1 mIoU) or the demo (-0.6 at 10 % more
    # CPU), and on polyp its teacher's confident mistakes took a fine-tuning round 8.4-15.9 mIoU below the
    # model it started from (docs/BENCHMARKS.md, "Fine-tuning objectives").
    consistency_training = models.BooleanField(
        default=False, help_text="Mean-teacher weak-to-strong consistency on unlabeled target images"
    )
    pixel_contrastive = models.BooleanField(default=False, help_text="Auxiliary supervised pixel contrastive loss")

    # BatchNorm statistics re-estimated on the unlabeled target images after training (learning.adaptation.batchnorm):
    # +7 to +26 mIoU on street scenes and the demo, -8 on the polyp frames, so "auto" lets validation decide.
    class TargetStatistics(models.TextChoices):
        AUTO = "auto", "The target images' where they score higher on validation"
        ON = "on", "Always the target images'"
        OFF = "off", "As trained"

    target_statistics = models.CharField(
        max_length=8, choices=TargetStatistics.choices, default=TargetStatistics.AUTO,
        help_text="Which BatchNorm statistics a trained model keeps",
    )
    class Pretrained(models.TextChoices):
        DEFAULT = "default", "Deployment default (MASKLOOP_PRETRAINED)"
        AUTO = "auto", "Best available: local file, ImageNet, self-supervised, none"
        IMAGENET = "imagenet", "ImageNet weights (torchvision)"
        FILE = "file", "Local backbone file (initial checkpoint)"
        SSL = "ssl", "Self-supervised on the project's images"
        NONE = "none", "None (random initialisation)"

    pretrained = models.CharField(
        max_length=16, choices=Pretrained.choices, default=Pretrained.DEFAULT,
        help_text="Where round 0's backbone starts (the dashboard says which one was used)",
    )
    ssl_pretraining = models.BooleanField(
        default=False, help_text="Self-supervised pretraining of the encoder on the project's images before round 0"
    )
    # 0 × 0: from the images (their median shape, shrunk to MASKLOOP_TRAIN_MAX_PIXELS; learning/recipe.py).
    train_height = models.PositiveIntegerField(default=0)
    train_width = models.PositiveIntegerField(default=0)
    train_steps_initial = models.PositiveIntegerField(default=600)
    train_steps_per_round = models.PositiveIntegerField(default=400)  # learning.recipe.RecipeSettings' (a test ties them)
    init_checkpoint = models.CharField(
        max_length=500, blank=True, help_text="Optional local path of a backbone or earlier checkpoint."
    )
    validation_images = models.PositiveIntegerField(
        default=10, validators=[MaxValueValidator(1000)],
        help_text="Target images set aside and labeled in the app as validation images when none with masks "
                  "were imported (mIoU is shown from 5 labeled ones on).",
    )
    # Round 0 of a project without labels has no model to ask with: it asks for whole, diversity-picked images,
    # and the first model learns from those alone (annotator/services/round_selection.cold_start_budget_images).
    cold_start_images = models.PositiveIntegerField(
        default=10, validators=[MaxValueValidator(1000)],
        help_text="Round 0 of a project with no labels asks for at least this many whole images (at most half "
                  "the pool), even when the round budget buys fewer; 0 = the budget alone.",
    )
    suggestion_precision = models.FloatField(
        default=0.95, validators=[MinValueValidator(0.5), MaxValueValidator(1.0)]
    )

    # Review and agreement (annotator/services/review.py): which submissions a reviewer checks,
    # and which labels train the model (the one filter is in annotator/services/round_data.py).
    class ReviewMode(models.TextChoices):
        OFF = "off", "Off: submitted masks are not reviewed"
        SAMPLE = "sample", "A random sample of submissions"
        ALL = "all", "Every submission"

    class TrainingSource(models.TextChoices):
        NOT_REJECTED = "not_rejected", "Submitted and not rejected"
        ACCEPTED = "accepted", "Accepted only (reviewed, or agreed by two annotators)"

    review_mode = models.CharField(max_length=16, choices=ReviewMode.choices, default=ReviewMode.OFF)
    review_sample_percent = models.PositiveSmallIntegerField(
        default=20, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="With a sampled review: the share of submissions a reviewer checks (resubmissions always are).",
    )
    training_source = models.CharField(
        max_length=16, choices=TrainingSource.choices, default=TrainingSource.NOT_REJECTED,
        help_text="Which submitted masks train the model. 'Accepted only' leaves out submissions nobody checked.",
    )
    review_blocks_round = models.BooleanField(
        default=True, help_text="A round closes only once the reviews of its queries are decided",
    )
    agreement_percent = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(100)],
        help_text="Share of each round's queries labeled by two annotators independently (0 = none).",
    )
    agreement_threshold = models.FloatField(
        default=0.8, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Mean IoU of the two masks below which the pair goes to review; above it their merge trains.",
    )
    agreement_boundary_px = models.PositiveSmallIntegerField(
        default=2, validators=[MaxValueValidator(50)],
        help_text="Pixel tolerance of the boundary F-score shown with each pair",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_started(self) -> bool:
        """Started (round 0 exists or the state left draft): splits are frozen, some settings fixed."""
        return self.state != self.State.DRAFT or self.rounds.exists()

    @property
    def has_masks(self) -> bool:
        """Some image has a mask (imported ground truth or an annotator's version): class ids are fixed."""
        return (self.images.exclude(gt_mask="").exists()
                or Annotation.objects.filter(image__project=self).exists())


class Membership(models.Model):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        REVIEWER = "reviewer", "Reviewer (labels and reviews)"
        LEAD = "lead", "Project lead"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


hex_color = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a hex colour like #1f77b4.")


class LabelClass(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="classes")
    index = models.PositiveSmallIntegerField(validators=[MaxValueValidator(MAX_CLASSES - 1)])
    name = models.CharField(max_length=64)
    color = models.CharField(max_length=7, validators=[hex_color])
    hotkey = models.CharField(max_length=1, blank=True)

    class Meta:
        ordering = ["project", "index"]
        verbose_name_plural = "label classes"
        constraints = [
            models.UniqueConstraint(fields=["project", "index"], name="labelclass_unique_index"),
            models.UniqueConstraint(fields=["project", "name"], name="labelclass_unique_name"),
            models.UniqueConstraint(
                fields=["project", "hotkey"], condition=~Q(hotkey=""), name="labelclass_unique_hotkey"
            ),
            models.CheckConstraint(condition=Q(index__lt=MAX_CLASSES), name="labelclass_index_below_ignore"),
        ]

    def __str__(self) -> str:
        return f"{self.index}: {self.name}"


def image_upload_to(instance: "Image", filename: str) -> str:
    return f"projects/{instance.project_id}/images/{filename}"


def mask_upload_to(instance: models.Model, filename: str) -> str:
    project_id = instance.project_id if hasattr(instance, "project_id") else instance.image.project_id
    return f"projects/{project_id}/masks/{filename}"


class Image(models.Model):
    class Domain(models.TextChoices):
        SOURCE = "source", "Source (labeled, other domain)"
        TARGET = "target", "Target (the domain to adapt to)"

    class Split(models.TextChoices):
        TRAIN = "train", "Train (labeled)"
        POOL = "pool", "Unlabeled pool"
        VAL = "val", "Validation (frozen)"
        TEST = "test", "Test"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=image_upload_to)  # checked by annotator.imaging at import
    original_name = models.CharField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    checksum = models.CharField(max_length=64, help_text="sha256 of the file bytes")
    domain = models.CharField(max_length=16, choices=Domain.choices)
    split = models.CharField(max_length=16, choices=Split.choices)
    # Ground truth that came with the import (source labels, validation labels).
    gt_mask = models.FileField(upload_to=mask_upload_to, blank=True)
    # Cached SLIC superpixels (uint16 PNG of region ids): the same regions are
    # queried by the selector and painted by the annotator's superpixel tool.
    superpixels = models.FileField(upload_to=mask_upload_to, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "original_name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "checksum"], name="image_unique_checksum"),
            models.UniqueConstraint(fields=["project", "original_name", "domain"], name="image_unique_name"),
        ]
        indexes = [models.Index(fields=["project", "domain", "split"])]

    def __str__(self) -> str:
        return self.original_name

    @property
    def pixels(self) -> int:
        return self.width * self.height


class Round(models.Model):
    """One labeling round. The state only moves forward: see ``annotator.services.rounds``."""

    class State(models.TextChoices):
        TRAINING = "training", "Training"
        SELECTING = "selecting", "Selecting queries"
        LABELING = "labeling", "Labeling"
        CLOSED = "closed", "Closed"

    TRANSITIONS = {
        State.TRAINING: {State.SELECTING},
        State.SELECTING: {State.LABELING, State.CLOSED},
        State.LABELING: {State.CLOSED},
        State.CLOSED: set(),
    }

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.TRAINING)
    model_version = models.ForeignKey(
        "models_store.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The model that selected this round's queries and wrote its suggestions.",
    )
    budget_planned_pixels = models.BigIntegerField(default=0)
    stats = models.JSONField(
        default=dict, blank=True, help_text="Selection and suggestion summary: strategy, weights, precision, coverage"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="round_unique_number")]

    def __str__(self) -> str:
        return f"{self.project} round {self.number}"

    def can_move_to(self, state: str) -> bool:
        return state in self.TRANSITIONS[self.State(self.state)]


def region_upload_to(instance: "Query", filename: str) -> str:
    return f"projects/{instance.image.project_id}/regions/{filename}"


class Query(models.Model):
    """An image, or a region of one, that a round asks annotators to label."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"

    class Kind(models.TextChoices):
        LABEL = "label", "Label (trains the model)"
        VALIDATION = "validation", "Validation (measures the model; never trains it)"

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="queries")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="queries")
    # "" for a whole-image query, else a stable key of the region (unique per round and image).
    region_key = models.CharField(max_length=64, blank=True, default="")
    region_mask = models.FileField(upload_to=region_upload_to, blank=True)
    region_bbox = models.JSONField(null=True, blank=True, help_text="[x0, y0, x1, y1] of the region")
    pixels = models.PositiveIntegerField(help_text="Pixels the annotator must label")
    score = models.FloatField(default=0.0)
    priority = models.PositiveIntegerField(default=0, help_text="0 = first in the queue")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.LABEL)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="queries"
    )
    locked_until = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=255, blank=True)
    time_spent_seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Agreement: the second, independent copy of a query points at the first (annotator/services/review.py).
    replica_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="replicas",
        help_text="The query this one repeats for a second annotator (agreement)",
    )
    # A rejected query goes back to the annotator who submitted it, and to nobody else.
    returned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Set while a rejected query waits for its annotator's fix",
    )

    class Meta:
        ordering = ["round", "priority", "id"]
        verbose_name_plural = "queries"
        constraints = [
            models.UniqueConstraint(fields=["round", "image", "region_key"], condition=Q(replica_of__isnull=True),
                                    name="query_unique_region"),
            models.UniqueConstraint(fields=["replica_of"], condition=Q(replica_of__isnull=False),
                                    name="query_one_replica"),
        ]
        indexes = [models.Index(fields=["round", "status", "priority"])]

    def __str__(self) -> str:
        suffix = f" region {self.region_key}" if self.region_key else ""
        return f"{self.image}{suffix} ({self.round})"


def annotation_upload_to(instance: "Annotation", filename: str) -> str:
    return f"projects/{instance.image.project_id}/annotations/{instance.image_id}/{filename}"


class Annotation(models.Model):
    """One saved version of an image's label mask. Rows are only ever added, never updated."""

    class Origin(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        REVIEW = "review", "Reviewer's fix"
        MERGE = "merge", "Merge of two annotators' masks"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="annotations")
    query = models.ForeignKey(Query, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotations")
    version = models.PositiveIntegerField()
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    mask = models.FileField(upload_to=annotation_upload_to)
    mask_checksum = models.CharField(max_length=64, blank=True, help_text="sha256 of the PNG bytes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    time_spent_seconds = models.FloatField(default=0.0)
    is_submitted = models.BooleanField(default=False, help_text="False for autosaved drafts")
    labeled_pixels = models.PositiveIntegerField(default=0)
    suggestion_dice = models.FloatField(
        null=True, blank=True, help_text="Dice of the pre-filled suggestion against this mask (submitted only)"
    )
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.ANNOTATOR)

    class Meta:
        ordering = ["image", "version"]
        constraints = [models.UniqueConstraint(fields=["image", "version"], name="annotation_unique_version")]

    def __str__(self) -> str:
        return f"{self.image} v{self.version}"


class Agreement(models.Model):
    """Two annotators' independent masks of one query, compared; rows are only ever added."""

    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="agreements",
                              help_text="The first of the pair (the replica points at it)")
    first = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="+")
    second = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="+")
    merged = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="+",
                               help_text="Agreed pixels kept, disputed pixels void (255)")
    score = models.FloatField(help_text="Mean IoU over the classes either mask uses")
    per_class_iou = models.JSONField(default=dict, help_text="{class index: IoU or null}")
    boundary_f = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(help_text="At or above the project's threshold: the merge trains unreviewed")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"agreement {self.score:.2f} on {self.query}"


class Review(models.Model):
    """A reviewer's check of one submitted version. The state moves once: pending → accepted/fixed/rejected."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for review"
        ACCEPTED = "accepted", "Accepted"
        FIXED = "fixed", "Fixed by the reviewer"
        REJECTED = "rejected", "Rejected"

    class Reason(models.TextChoices):
        ALL = "all", "Every submission is reviewed"
        SAMPLE = "sample", "Sampled for review"
        RESUBMITTED = "resubmitted", "Resubmitted after a rejection"
        DISAGREEMENT = "disagreement", "Two annotators disagreed"

    DECIDED_STATES = (State.ACCEPTED, State.FIXED, State.REJECTED)

    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="reviews")
    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="reviews",
                                   help_text="The submitted version under review")
    agreement = models.ForeignKey(Agreement, null=True, blank=True, on_delete=models.CASCADE, related_name="reviews")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    fix = models.ForeignKey(Annotation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                            help_text="The reviewer's corrected version")
    comment = models.TextField(blank=True)
    marks = models.JSONField(default=list, blank=True, help_text="[[x, y], …]: points the reviewer marked")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            # One review per submitted version: a resubmission is a new version, hence a new review.
            models.UniqueConstraint(fields=["annotation"], name="review_unique_annotation"),
        ]
        indexes = [models.Index(fields=["query", "state"])]

    def __str__(self) -> str:
        return f"review of {self.annotation} ({self.state})"


def suggestion_upload_to(instance: "Suggestion", filename: str) -> str:
    return f"projects/{instance.query.image.project_id}/suggestions/{filename}"


class Suggestion(models.Model):
    """A model's pre-filled mask for a query: 255 where the model is not confident enough."""

    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="suggestions")
    model_version = models.ForeignKey("models_store.ModelVersion", on_delete=models.CASCADE, related_name="+")
    mask = models.FileField(upload_to=suggestion_upload_to)
    confidence = models.FileField(upload_to=suggestion_upload_to, help_text="uint8 PNG, confidence × 255")
    coverage = models.FloatField(default=0.0, help_text="Share of the query's pixels that are pre-filled")
    precision = models.FloatField(null=True, blank=True, help_text="Against ground truth, when it is known")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["query", "model_version"], name="suggestion_unique_per_model"),
        ]

    def __str__(self) -> str:
        return f"suggestion for {self.query} by {self.model_version}"


class Job(models.Model):
    """A background run (Celery task) with its live progress; the UI polls this row."""

    class Kind(models.TextChoices):
        ROUND = "round", "Train, select and suggest"
        IMPORT = "import", "Import"
        EXPORT = "export", "Export"
        PRETRAIN = "pretrain", "Self-supervised pretraining"
        PING = "ping", "Worker check"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINAL_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED)
    ACTIVE_STATES = (State.QUEUED, State.RUNNING)
    RETRYABLE_STATES = (State.FAILED, State.CANCELLED)

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    round = models.ForeignKey(Round, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    celery_task_id = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    phase = models.CharField(max_length=64, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    log = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    # Who runs it and when it last reported: a job RUNNING on a worker that
    # restarted, or silent for too long, died with its worker and is re-queued.
    worker = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="job_progress_max_100"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES

    @property
    def can_cancel(self) -> bool:
        """A job can be asked to stop until it has ended."""
        return not self.is_final

    def retry_refusal(self) -> str | None:
        """Why this job cannot run again, as a sentence; None when it can (see :attr:`can_retry`).

        Only a failed or cancelled round job whose round still waits for its
        model (training or selecting) runs again, and never beside another
        queued or running job of the same round.
        """
        if self.kind != self.Kind.ROUND or self.round_id is None:
            return "only round jobs can be retried"
        if self.state not in self.RETRYABLE_STATES:
            return f"job {self.pk} is {self.state}; only failed or cancelled jobs can be retried"
        round_ = self.round
        if round_.state not in (Round.State.TRAINING, Round.State.SELECTING):
            return f"round {round_.number} is {round_.state}: nothing to retry"
        if round_.jobs.exclude(pk=self.pk).filter(state__in=self.ACTIVE_STATES).exists():
            return f"round {round_.number} already has a job queued or running"
        return None

    @property
    def can_retry(self) -> bool:
        return self.retry_refusal() is None
