"""What the review endpoints read and take: a review with its files as URLs, decisions, the dashboard numbers."""
from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from ..models import Agreement, Review
from ..selectors_labeling import query_suggestion
from ..selectors_review import review_annotators
from .labeling_serializers import AnnotationVersionSerializer
from .serializers import LabelClassSerializer


class AgreementSerializer(serializers.ModelSerializer):
    first = AnnotationVersionSerializer(read_only=True)
    second = AnnotationVersionSerializer(read_only=True)
    merged = AnnotationVersionSerializer(read_only=True)

    class Meta:
        model = Agreement
        fields = ["id", "query", "first", "second", "merged", "score", "per_class_iou", "boundary_f", "passed",
                  "created_at"]
        read_only_fields = fields


class ReviewSerializer(serializers.ModelSerializer):
    """A review with everything the review page shows: the image, the mask, the suggestion it started from,
    who labeled it and for how long."""

    annotation = AnnotationVersionSerializer(read_only=True)
    fix = AnnotationVersionSerializer(read_only=True)
    reviewer = serializers.CharField(source="reviewer.username", default=None, read_only=True)
    annotators = serializers.SerializerMethodField()
    agreement = AgreementSerializer(read_only=True)
    round = serializers.IntegerField(source="query.round.number", read_only=True)
    project = serializers.IntegerField(source="query.round.project_id", read_only=True)
    image = serializers.SerializerMethodField()
    region = serializers.SerializerMethodField()
    suggestion = serializers.SerializerMethodField()
    classes = serializers.SerializerMethodField()
    base_version = serializers.IntegerField(source="annotation.version", read_only=True,
                                            help_text="Send it with a fix: the version the fix starts from")
    urls = serializers.SerializerMethodField()

    class Meta:
        model = Review
        fields = ["id", "project", "round", "query", "state", "reason", "annotation", "annotators", "agreement",
                  "reviewer", "fix", "comment", "marks", "created_at", "decided_at", "image", "region",
                  "suggestion", "classes", "base_version", "urls"]
        read_only_fields = fields

    def get_annotators(self, review: Review) -> list[dict]:
        rows = []
        for annotation in review_annotators(review):
            query = annotation.query
            rows.append({
                "username": annotation.author.get_username() if annotation.author else None,
                "version": annotation.version, "mask_url": reverse("labeling-annotation-mask", args=[annotation.pk]),
                "time_spent_seconds": query.time_spent_seconds if query else annotation.time_spent_seconds,
                "submitted_at": annotation.created_at,
            })
        return rows

    def get_image(self, review: Review) -> dict:
        image = review.query.image
        return {"id": image.pk, "name": image.original_name, "width": image.width, "height": image.height,
                "url": reverse("labeling-query-image", args=[review.query_id])}

    def get_region(self, review: Review) -> dict | None:
        query = review.query
        if not query.region_mask:
            return None
        return {"key": query.region_key, "bbox": query.region_bbox,
                "mask_url": reverse("labeling-query-region", args=[query.pk])}

    def get_suggestion(self, review: Review) -> dict | None:
        suggestion = query_suggestion(query=review.query)
        if suggestion is None:
            return None
        return {"model_version": suggestion.model_version.version, "coverage": suggestion.coverage,
                "mask_url": reverse("labeling-query-suggestion", args=[review.query_id, "mask"])}

    def get_classes(self, review: Review) -> list[dict]:
        return LabelClassSerializer(review.query.round.project.classes.order_by("index"), many=True).data

    def get_urls(self, review: Review) -> dict:
        return {name: reverse(f"review-{name}", args=[review.pk]) for name in ("detail", "accept", "reject", "fix")} | {
            "page": reverse("review-page", args=[review.query.round.project_id, review.pk]),
            "queue_page": reverse("review-queue-page", args=[review.query.round.project_id]),
        }


class DecisionSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class RejectSerializer(serializers.Serializer):
    comment = serializers.CharField(max_length=2000, help_text="What is wrong: the annotator reads it")
    marks = serializers.ListField(child=serializers.ListField(child=serializers.FloatField(), min_length=2,
                                                              max_length=2),
                                  required=False, default=list, help_text="[[x, y], …] points in image pixels")


class FixParamsSerializer(serializers.Serializer):
    base_version = serializers.IntegerField(min_value=0)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    time_spent = serializers.FloatField(min_value=0, required=False, default=0.0)


class FixUploadSerializer(FixParamsSerializer):
    mask = serializers.FileField(help_text="Single-channel index PNG: class ids, 255 = unlabeled")


class AnnotatorReviewSerializer(serializers.Serializer):
    username = serializers.CharField()
    reviewed = serializers.IntegerField()
    accepted = serializers.IntegerField()
    fixed = serializers.IntegerField()
    rejected = serializers.IntegerField()
    pending = serializers.IntegerField()
    acceptance_rate = serializers.FloatField(allow_null=True)


class AnnotatorAgreementSerializer(serializers.Serializer):
    username = serializers.CharField()
    pairs = serializers.IntegerField()
    mean_iou = serializers.FloatField(allow_null=True)
    boundary_f = serializers.FloatField(allow_null=True)
    passed = serializers.IntegerField()


class ClassAgreementSerializer(serializers.Serializer):
    name = serializers.CharField()
    pairs = serializers.IntegerField()
    mean_iou = serializers.FloatField(allow_null=True)


class ReviewSummarySerializer(serializers.Serializer):
    review_mode = serializers.CharField()
    training_source = serializers.CharField()
    waiting = serializers.IntegerField()
    oldest_wait_seconds = serializers.FloatField(allow_null=True)
    median_wait_seconds = serializers.FloatField(allow_null=True)
    waiting_by_round = serializers.DictField(child=serializers.IntegerField())
    decided = serializers.IntegerField()
    annotators = AnnotatorReviewSerializer(many=True)
    agreement_pairs = serializers.IntegerField()
    agreement_passed = serializers.IntegerField()
    agreement_annotators = AnnotatorAgreementSerializer(many=True)
    agreement_classes = ClassAgreementSerializer(many=True)
