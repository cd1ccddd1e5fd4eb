"""What the labeling page reads (a query with its files) and the parameters of a save, skip or release."""
from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from ..models import Annotation, Query
from ..selectors_labeling import query_suggestion, query_tile
from ..selectors_review import query_latest_annotation
from .serializers import QUERY_KIND_HELP, LabelClassSerializer


class AnnotationVersionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", default=None)
    mask_url = serializers.SerializerMethodField()

    class Meta:
        model = Annotation
        fields = [
            "id", "version", "author", "created_at", "is_submitted", "labeled_pixels", "time_spent_seconds",
            "suggestion_dice", "mask_url", "query",
        ]
        read_only_fields = fields

    def get_mask_url(self, annotation: Annotation) -> str:
        return reverse("labeling-annotation-mask", args=[annotation.pk])


class QueryDetailSerializer(serializers.ModelSerializer):
    """Everything the labeling page needs for one query, files as URLs behind membership checks."""

    project = serializers.SerializerMethodField()
    round = serializers.SerializerMethodField()
    kind = serializers.CharField(read_only=True, help_text=QUERY_KIND_HELP)
    assignee = serializers.CharField(source="assignee.username", default=None)
    image = serializers.SerializerMethodField()
    classes = serializers.SerializerMethodField()
    annotation = serializers.SerializerMethodField()
    base_version = serializers.SerializerMethodField()
    suggestion = serializers.SerializerMethodField()
    region = serializers.SerializerMethodField()
    superpixels_url = serializers.SerializerMethodField()
    lock_seconds = serializers.SerializerMethodField()
    tile = serializers.SerializerMethodField(help_text=(
        "Null unless the query is labeled on a tile of a large image: then the image, masks, suggestion, "
        "region and superpixels are the tile's crop (image width/height are the tile's), the mask you save is "
        "the tile's, and context_url is the whole image downscaled"))
    urls = serializers.SerializerMethodField()

    class Meta:
        model = Query
        fields = [
            "id", "project", "round", "kind", "status", "assignee", "locked_until", "pixels", "score", "priority",
            "time_spent_seconds", "image", "classes", "annotation", "base_version", "suggestion", "region",
            "superpixels_url", "lock_seconds", "tile", "urls",
        ]
        read_only_fields = fields

    def _latest(self, query: Query) -> Annotation | None:
        cache = self.context.setdefault("_latest", {})
        if query.pk not in cache:
            cache[query.pk] = query_latest_annotation(query=query)  # agreement copies do not see each other
        return cache[query.pk]

    def _tile(self, query: Query):
        cache = self.context.setdefault("_tile", {})
        if query.pk not in cache:
            cache[query.pk] = query_tile(query=query)
        return cache[query.pk]

    def get_tile(self, query: Query) -> dict | None:
        tile = self._tile(query)
        if tile is None:
            return None
        return {
            "index": tile.index, "box": list(tile.box),
            "image_width": query.image.width, "image_height": query.image.height,
            "context_url": reverse("labeling-query-context", args=[query.pk]),
        }

    def get_project(self, query: Query) -> dict:
        return {"id": query.round.project_id, "name": query.round.project.name}

    def get_round(self, query: Query) -> dict:
        return {"id": query.round_id, "number": query.round.number, "state": query.round.state}

    def get_image(self, query: Query) -> dict:
        image, tile = query.image, self._tile(query)
        return {
            "id": image.pk, "name": image.original_name,
            "width": tile.width if tile else image.width, "height": tile.height if tile else image.height,
            "url": reverse("labeling-query-image", args=[query.pk]),
        }

    def get_classes(self, query: Query) -> list[dict]:
        return LabelClassSerializer(query.round.project.classes.order_by("index"), many=True).data

    def get_annotation(self, query: Query) -> dict | None:
        latest = self._latest(query)
        if latest is None:
            return None
        data = AnnotationVersionSerializer(latest).data
        tile = self._tile(query)
        if tile is not None:  # the tile's part of the whole-image version
            data["mask_url"] += "?box=" + ",".join(map(str, tile.box))
        return data

    def get_base_version(self, query: Query) -> int:
        latest = self._latest(query)
        return latest.version if latest else 0

    def get_suggestion(self, query: Query) -> dict | None:
        suggestion = query_suggestion(query=query)
        if suggestion is None:
            return None
        return {
            "id": suggestion.pk,
            "model_version": suggestion.model_version.version,
            "coverage": suggestion.coverage,
            # The model was confident about none of the query's pixels: nothing is pre-filled (its Dice is n/a).
            "empty": suggestion.coverage <= 0,
            "mask_url": reverse("labeling-query-suggestion", args=[query.pk, "mask"]),
            "confidence_url": reverse("labeling-query-suggestion", args=[query.pk, "confidence"]),
        }

    def get_region(self, query: Query) -> dict | None:
        if not query.region_mask:
            return None
        bbox, tile = query.region_bbox, self._tile(query)
        if tile is not None and bbox:  # in the tile's pixels, like every file of a tile query
            bbox = [bbox[0] - tile.x0, bbox[1] - tile.y0, bbox[2] - tile.x0, bbox[3] - tile.y0]
        return {
            "key": query.region_key, "bbox": bbox, "pixels": query.pixels,
            "mask_url": reverse("labeling-query-region", args=[query.pk]),
        }

    def get_superpixels_url(self, query: Query) -> str:
        return reverse("labeling-query-superpixels", args=[query.pk])

    def get_lock_seconds(self, query: Query) -> int:
        return settings.MASKLOOP_QUERY_LOCK_SECONDS

    def get_urls(self, query: Query) -> dict:
        project_pk = query.round.project_id
        return {
            "self": reverse("labeling-query", args=[query.pk]),
            "page": reverse("labeling-page", args=[project_pk, query.pk]),
            "claim": reverse("labeling-query-claim", args=[query.pk]),
            "save": reverse("labeling-query-save", args=[query.pk]),
            "submit": reverse("labeling-query-submit", args=[query.pk]),
            "skip": reverse("labeling-query-skip", args=[query.pk]),
            "release": reverse("labeling-query-release", args=[query.pk]),
            "next": reverse("labeling-next", args=[project_pk]),
            "queue_page": reverse("labeling-queue-page", args=[project_pk]),
        }


class SaveParamsSerializer(serializers.Serializer):
    base_version = serializers.IntegerField(min_value=0)
    time_spent = serializers.FloatField(min_value=0, required=False, default=0.0)
    submit = serializers.BooleanField(required=False, default=False)


class SkipSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255)
    time_spent = serializers.FloatField(min_value=0, required=False, default=0.0)


class ReleaseSerializer(serializers.Serializer):
    time_spent = serializers.FloatField(min_value=0, required=False, default=0.0)


# --- response shapes, for the OpenAPI schema and the reader -------------------------------------


class NextQuerySerializer(serializers.Serializer):
    query = QueryDetailSerializer(allow_null=True, help_text="The query now locked for you; null when none is open")
    detail = serializers.CharField(required=False, help_text="Why there is nothing to label, when query is null")


class RoundRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    state = serializers.CharField()


class QueueSerializer(serializers.Serializer):
    round = RoundRefSerializer(allow_null=True)
    pending = serializers.IntegerField()
    available = serializers.IntegerField(help_text="Pending and not locked by somebody else")
    in_progress = serializers.IntegerField(help_text="Locked by other annotators right now")
    submitted = serializers.IntegerField()
    skipped = serializers.IntegerField()
    my_submitted = serializers.IntegerField()
    my_seconds = serializers.FloatField()
    held = serializers.ListField(child=serializers.IntegerField(), help_text="Ids of the queries you hold")


class SaveResultSerializer(serializers.Serializer):
    annotation = AnnotationVersionSerializer()
    created = serializers.BooleanField(help_text="False when an identical draft was not stored again")
    next_round = serializers.IntegerField(allow_null=True, help_text="Number of the round this submit opened")


class MaskUploadSerializer(SaveParamsSerializer):
    mask = serializers.FileField(help_text="Single-channel index PNG: class ids, 255 = unlabeled")


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.ChoiceField(choices=["stale_version", "locked", "conflict"])
    latest = AnnotationVersionSerializer(required=False, allow_null=True)
    same_user = serializers.BooleanField(
        required=False, help_text="stale_version only: the latest version is your own, saved from another tab or window")
