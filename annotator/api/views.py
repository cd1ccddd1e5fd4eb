"""REST API for clients and the lead pages: thin views, every change through one service.

Views call services directly; a refusal (ServiceError) becomes its HTTP answer
in :mod:`annotator.api.exceptions`.

Every queryset is narrowed to the projects the user belongs to (all of them
for staff), so an outsider sees empty lists and 404s; the permission classes
then let members read and leads write. The annotator's labeling endpoints
(next query, save, submit, skip) live in ``labeling_*.py``.
"""
from __future__ import annotations

import dataclasses
import mimetypes
import tempfile

from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.filters import OrderingFilter
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from models_store.models import ModelVersion
from models_store.services import model_version_promote

from ..models import Annotation, Image, Job, Project, Query, Round, Suggestion
from ..selectors import (
    image_overlays, membership_list, project_ids_for_user, project_list_for_user, project_metrics,
)
from ..services.exports import export_file, export_model, export_start, project_slug
from ..services.image_requests import image_request_label
from ..services.images import image_import_start, image_set_split
from ..services.jobs import job_cancel_request
from ..services.projects import (
    class_specs_complete, membership_remove, membership_set, project_create, project_delete, project_set_archived,
    project_set_classes, project_update,
)
from ..services.rounds import job_retry, project_readiness, project_start, round_close
from ..services.derived_images import image_thumbnail
from ..services.uploads import upload_batch
from . import serializers as s
from .filters import CustomFilter, DeclaredFilterBackend, Filter, PageNumberWithSize
from .permissions import IsProjectLead, IsProjectLeadOrReadOnly


class ProjectScopedViewSet(viewsets.GenericViewSet):
    """Rows of the user's projects only; ``project_lookup`` leads from the model to its project."""

    project_lookup = "project"
    permission_classes = [IsAuthenticated, IsProjectLeadOrReadOnly]
    filter_backends = [DeclaredFilterBackend, OrderingFilter]
    pagination_class = PageNumberWithSize
    filters: dict[str, Filter] = {}

    def base_queryset(self):
        return self.queryset

    def get_queryset(self):
        allowed = project_ids_for_user(user=self.request.user)
        return self.base_queryset().filter(**{f"{self.project_lookup}__in": allowed})


# --- Projects -------------------------------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(description="Create a project; you become its lead."),
    partial_update=extend_schema(description="Change settings (leads). Architecture and pretraining are fixed "
                                             "once the project has started."),
    update=extend_schema(description="Replace settings (leads)."),
    destroy=extend_schema(description="Delete the project with everything in it: images, labels, models, exports "
                                      "(its leads and staff). Refused while one of its jobs is queued or running."),
)
class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                     mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = s.ProjectSerializer
    queryset = Project.objects.all()  # narrowed per user in get_queryset
    permission_classes = [IsAuthenticated, IsProjectLeadOrReadOnly]
    filter_backends = [DeclaredFilterBackend, OrderingFilter]
    pagination_class = PageNumberWithSize
    filters = {
        "state": Filter("state", str, tuple(Project.State.values)),
        "archived": CustomFilter("archived_at", bool, function=lambda qs, v: qs.filter(archived_at__isnull=not v),
                                 description="true: archived projects only; false: the others."),
    }
    ordering_fields = ["name", "created_at"]

    def get_queryset(self):
        return project_list_for_user(user=self.request.user).prefetch_related("classes")

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return s.ProjectUpdateSerializer
        return super().get_serializer_class()

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        classes = class_specs_complete(data.pop("classes", []))
        serializer.instance = project_create(created_by=self.request.user, classes=classes, **data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("classes", None)
        serializer.instance = project_update(project=serializer.instance, **data)

    def perform_destroy(self, instance):
        project_delete(project=instance, user=self.request.user)

    @extend_schema(request=None, responses=s.ProjectSerializer,
                   description="Archive the project (leads): read-only, nothing handed out to label, listed apart "
                               "(?archived=true). Refused while one of its jobs is queued or running.")
    @action(detail=True, methods=["post"], filter_backends=[])
    def archive(self, request, pk=None):
        project = project_set_archived(project=self.get_object(), archived=True)
        return Response(self.get_serializer(self.get_queryset().get(pk=project.pk)).data)

    @extend_schema(request=None, responses=s.ProjectSerializer, description="Bring an archived project back (leads).")
    @action(detail=True, methods=["post"], filter_backends=[])
    def unarchive(self, request, pk=None):
        project = project_set_archived(project=self.get_object(), archived=False)
        return Response(self.get_serializer(self.get_queryset().get(pk=project.pk)).data)

    @extend_schema(request=s.LabelClassSerializer(many=True), responses=s.LabelClassSerializer(many=True),
                   description="The class list. PUT replaces it (leads); once masks exist only names, colours "
                               "and hotkeys can change.")
    @action(detail=True, methods=["get", "put"], pagination_class=None, filter_backends=[])
    def classes(self, request, pk=None):
        project = self.get_object()
        if request.method == "PUT":
            serializer = s.LabelClassSerializer(data=request.data, many=True)
            serializer.is_valid(raise_exception=True)
            project_set_classes(project=project, classes=class_specs_complete(serializer.validated_data))
        return Response(s.LabelClassSerializer(project.classes.order_by("index"), many=True).data)

    @extend_schema(methods=["GET"], responses=s.MembershipSerializer(many=True))
    @extend_schema(methods=["POST"], request=s.MembershipSerializer, responses=s.MembershipSerializer,
                   description="Add a user to the project or change their role (leads).")
    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def members(self, request, pk=None):
        project = self.get_object()
        if request.method == "POST":
            serializer = s.MembershipSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            membership = membership_set(project=project, user=serializer.validated_data["user"]["username"],
                                        role=serializer.validated_data["role"])
            return Response(s.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)
        return Response(s.MembershipSerializer(membership_list(project=project), many=True).data)

    @extend_schema(request=None, responses={204: None}, description="Take a user off the project (leads).")
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<user_id>[0-9]+)", filter_backends=[])
    def remove_member(self, request, pk=None, user_id=None):
        project = self.get_object()
        user = get_object_or_404(get_user_model(), pk=user_id)
        membership_remove(project=project, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=s.ReadinessSerializer, description="What stops the project from starting.")
    @action(detail=True, methods=["get"], filter_backends=[])
    def readiness(self, request, pk=None):
        problems = project_readiness(project=self.get_object())
        return Response({"ready": not problems, "problems": problems})

    @extend_schema(request=None, responses={201: s.RoundSerializer},
                   description="Start the project (leads): round 0 trains on labeled source + unlabeled target.")
    @action(detail=True, methods=["post"], filter_backends=[])
    def start(self, request, pk=None):
        round_ = project_start(project=self.get_object(), user=request.user)
        return Response(s.RoundSerializer(_rounds_with_counts().get(pk=round_.pk)).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.ProjectMetricsSerializer,
                   description="Per-round mIoU, per-class IoU, label efficiency, budget, suggestion quality and "
                               "annotator throughput (leads).")
    @action(detail=True, methods=["get"], permission_classes=[IsAuthenticated, IsProjectLead], filter_backends=[])
    def metrics(self, request, pk=None):
        metrics = dataclasses.asdict(project_metrics(project=self.get_object()))
        return Response(s.ProjectMetricsSerializer(metrics).data)

    @extend_schema(request=s.ImageSplitSerializer, responses=s.ImageSplitResultSerializer,
                   description="Move images between splits, e.g. mark validation images (leads, before the start: "
                               "validation images are frozen afterwards).")
    @action(detail=True, methods=["post"], url_path="images/split", filter_backends=[])
    def set_split(self, request, pk=None):
        serializer = s.ImageSplitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changed = image_set_split(project=self.get_object(), images=serializer.validated_data["image_ids"],
                                  split=serializer.validated_data["split"])
        return Response({"changed": changed})

    @extend_schema(request={"multipart/form-data": s.ImportSerializer}, responses={202: s.JobSerializer},
                   description="Import images (+ masks) from an uploaded zip or a server folder, as a job (leads).")
    @action(detail=True, methods=["post"], filter_backends=[])
    def imports(self, request, pk=None):
        serializer = s.ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = image_import_start(project=self.get_object(), user=request.user, domain=data["domain"],
                                 val_count=data["val_count"], upload=data.get("archive"), folder=data.get("folder", ""))
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request={"multipart/form-data": s.UploadSerializer}, responses=s.UploadAnswerSerializer,
                   description="Upload a few images (+ masks matched by file stem) and import them now, each checked "
                               "like a zip import; answers per file (leads). Send large sets in batches.")
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser], filter_backends=[])
    def uploads(self, request, pk=None):
        project = self.get_object()
        serializer = s.UploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        results = upload_batch(project=project, files=data["images"], masks=data["masks"], domain=data["domain"],
                               split=data.get("split"))
        states = [result.state for result in results]
        return Response({"results": [dataclasses.asdict(result) for result in results],
                         **{state: states.count(state) for state in ("imported", "skipped", "rejected")}})

    @extend_schema(request=s.LabelRequestSerializer, responses={201: s.QuerySerializer(many=True)},
                   description="Send pool images to the labeling round's queue as whole-image queries (leads). "
                               "They replace the selector's lowest-ranked untouched queries, so the round's "
                               "budget holds; refused when it cannot.")
    @action(detail=True, methods=["post"], url_path="label-requests", filter_backends=[])
    def label_requests(self, request, pk=None):
        serializer = s.LabelRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        queries = image_request_label(project=self.get_object(), images=serializer.validated_data["image_ids"],
                                      user=request.user)
        return Response(s.QuerySerializer(queries, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ExportSerializer, responses={202: s.JobSerializer},
                   description="Export masks (zip of index PNGs in the import layout), colour masks (the same zip "
                               "with Pascal VOC palette PNGs) or COCO JSON with RLE, as a job; fetch the file from "
                               "/api/jobs/{id}/download/ when it succeeds (leads).")
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, IsProjectLead], filter_backends=[])
    def exports(self, request, pk=None):
        serializer = s.ExportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = export_start(project=self.get_object(), fmt=serializer.validated_data["format"],
                           include_imported=serializer.validated_data["include_imported"])
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


# --- Images, rounds, queries, annotations, suggestions --------------------------------------------------------


class ImageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    serializer_class = s.ImageSerializer
    queryset = Image.objects.all()
    filters = {
        "project": Filter("project_id"),
        "domain": Filter("domain", str, tuple(Image.Domain.values)),
        "split": Filter("split", str, tuple(Image.Split.values)),
        "has_ground_truth": CustomFilter("gt_mask", bool, function=lambda qs, v: qs.exclude(gt_mask="") if v
                                         else qs.filter(gt_mask=""),
                                         description="Only images that came with (or without) a mask."),
    }
    ordering_fields = ["original_name", "created_at", "id"]

    @extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY},
                   description="A small JPEG (longest side 224 px), made on first request and cached (members).")
    @action(detail=True, methods=["get"])
    def thumbnail(self, request, pk=None):
        image = self.get_object()
        name = image_thumbnail(image=image)
        return _cached(FileResponse(image.file.storage.open(name, "rb"), content_type="image/jpeg"))

    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY}, description="The image file (members).")
    @action(detail=True, methods=["get"])
    def file(self, request, pk=None):
        image = self.get_object()
        content_type = mimetypes.guess_type(image.file.name)[0] or "application/octet-stream"
        return _cached(_file_response(image.file, filename=image.original_name, content_type=content_type))

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY},
                   description="The image's latest mask: its newest saved version, else the mask imported with "
                               "it; index PNG, 255 = void (members).")
    @action(detail=True, methods=["get"])
    def mask(self, request, pk=None):
        image = self.get_object()
        overlays = image_overlays(image=image)
        field = overlays.mask.mask if overlays.mask else image.gt_mask
        return _file_response(field, filename=f"image-{image.pk}-mask.png", content_type="image/png")

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY},
                   description="The newest suggestion made for this image: index PNG, 255 = not suggested (members).")
    @action(detail=True, methods=["get"])
    def suggestion(self, request, pk=None):
        suggestion = image_overlays(image=self.get_object()).suggestion
        if suggestion is None:
            raise NotFound("no suggestion was made for this image")
        return _file_response(suggestion.mask, filename=f"image-{pk}-suggestion.png", content_type="image/png")


def _cached(response: FileResponse) -> FileResponse:
    """An image's bytes never change (a new file is a new image), so neither do its file and thumbnail."""
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


def _rounds_with_counts():
    return Round.objects.annotate(
        queries_total=Count("queries"),
        queries_pending=Count("queries", filter=Q(queries__status=Query.Status.PENDING)),
    )


class RoundViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    serializer_class = s.RoundSerializer
    queryset = Round.objects.all()
    filters = {"project": Filter("project_id"), "state": Filter("state", str, tuple(Round.State.values))}
    ordering_fields = ["number", "created_at"]

    def base_queryset(self):
        return _rounds_with_counts().order_by("project", "number")

    @extend_schema(request=None, responses={200: s.RoundSerializer},
                   description="Close a labeling round early (leads); the next round's training starts. "
                               "Returns the next round, or this one when the project has ended.")
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        round_ = self.get_object()
        following = round_close(round_=round_, user=request.user)
        return Response(s.RoundSerializer(self.base_queryset().get(pk=(following or round_).pk)).data)


class QueryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    serializer_class = s.QuerySerializer
    queryset = Query.objects.select_related("assignee", "round")
    project_lookup = "round__project"
    filters = {
        "project": Filter("round__project_id"), "round": Filter("round_id"),
        "round_number": Filter("round__number"), "image": Filter("image_id"),
        "status": Filter("status", str, tuple(Query.Status.values)), "assignee": Filter("assignee_id"),
    }
    ordering_fields = ["priority", "score", "submitted_at", "id"]


def _file_response(field_file, *, filename: str, content_type: str) -> FileResponse:
    if not field_file:
        raise NotFound("this row has no such file")
    return FileResponse(field_file.open("rb"), filename=filename, content_type=content_type)


class AnnotationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """Every saved version of every mask (read only: annotators write through the labeling endpoints)."""

    serializer_class = s.AnnotationSerializer
    queryset = Annotation.objects.select_related("author")
    project_lookup = "image__project"
    filters = {
        "project": Filter("image__project_id"), "image": Filter("image_id"), "query": Filter("query_id"),
        "round": Filter("query__round_id"), "author": Filter("author_id"), "is_submitted": Filter("is_submitted", bool),
    }
    ordering_fields = ["created_at", "version", "id"]

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY}, description="The mask: index PNG, 255 = void.")
    @action(detail=True, methods=["get"])
    def mask(self, request, pk=None):
        annotation = self.get_object()
        return _file_response(annotation.mask, filename=f"annotation-{annotation.pk}-v{annotation.version}.png",
                              content_type="image/png")


class SuggestionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    serializer_class = s.SuggestionSerializer
    queryset = Suggestion.objects.order_by("id")
    project_lookup = "query__round__project"
    filters = {
        "project": Filter("query__round__project_id"), "round": Filter("query__round_id"),
        "query": Filter("query_id"), "model_version": Filter("model_version_id"),
    }
    ordering_fields = ["created_at", "coverage", "id"]

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY},
                   description="The suggested index mask: 255 where the model was not confident enough.")
    @action(detail=True, methods=["get"])
    def mask(self, request, pk=None):
        return _file_response(self.get_object().mask, filename=f"suggestion-{pk}.png", content_type="image/png")

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY},
                   description="Per-pixel confidence: uint8 PNG, confidence × 255.")
    @action(detail=True, methods=["get"])
    def confidence(self, request, pk=None):
        return _file_response(self.get_object().confidence, filename=f"suggestion-{pk}-confidence.png",
                              content_type="image/png")


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    serializer_class = s.ModelVersionSerializer
    queryset = ModelVersion.objects.select_related("round")
    filters = {"project": Filter("project_id"), "state": Filter("state", str, tuple(ModelVersion.State.values))}
    ordering_fields = ["version", "created_at"]

    @extend_schema(request=None, responses=s.ModelVersionSerializer,
                   description="Make this version the one that serves suggestions and that the next round "
                               "fine-tunes (leads): promotes a rejected model or rolls back to an older one; "
                               "newer promoted versions are set aside with the reason.")
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, IsProjectLead])
    def promote(self, request, pk=None):
        chosen = model_version_promote(model_version=self.get_object(), user=request.user)
        return Response(s.ModelVersionSerializer(chosen).data)

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY},
                   description="The checkpoint (weights + meta.json under model/) and maskloop.json with the "
                               "version's metrics, classes and training config (leads, like exports).")
    @action(detail=True, methods=["get"], permission_classes=[IsAuthenticated, IsProjectLead])
    def download(self, request, pk=None):
        model_version = self.get_object()
        handle = tempfile.TemporaryFile()
        export_model(model_version=model_version, dest=handle)
        handle.seek(0)
        name = f"{project_slug(model_version.project)}-model-v{model_version.version}.zip"
        return FileResponse(handle, filename=name, content_type="application/zip", as_attachment=True)


# --- Jobs -----------------------------------------------------------------------------------------------------


def _active(queryset, value: bool):
    active = Q(state__in=Job.ACTIVE_STATES)
    return queryset.filter(active) if value else queryset.exclude(active)


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """Background runs with live progress; the pages poll these."""

    queryset = Job.objects.select_related("round")
    filters = {
        "project": Filter("project_id"), "round": Filter("round_id"),
        "kind": Filter("kind", str, tuple(Job.Kind.values)), "state": Filter("state", str, tuple(Job.State.values)),
        "active": CustomFilter("state", bool, function=_active, description="true: queued or running jobs only."),
    }
    ordering_fields = ["created_at", "id"]

    def get_serializer_class(self):
        return s.JobDetailSerializer if self.action == "retrieve" else s.JobSerializer

    def get_queryset(self):
        # Jobs without a project (worker checks) are visible to staff only.
        return self.queryset.all() if self.request.user.is_staff else super().get_queryset()

    @extend_schema(request=None, responses=s.JobSerializer,
                   description="Ask a job to stop (leads): a queued job is cancelled at once, a running one at its "
                               "next progress report.")
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(s.JobSerializer(job_cancel_request(job=self.get_object())).data)

    @extend_schema(request=None, responses={201: s.JobSerializer},
                   description="Run a failed or cancelled round job again (leads); returns the new job.")
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        job = job_retry(job=self.get_object(), user=request.user)
        return Response(s.JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY,
                              404: OpenApiResponse(description="not an export job, or not finished")},
                   description="The file of a finished export job (leads).")
    @action(detail=True, methods=["get"], permission_classes=[IsAuthenticated, IsProjectLead])
    def download(self, request, pk=None):
        job = self.get_object()
        found = export_file(job=job)
        if found is None:
            raise NotFound("this job has no export file (not an export, not finished, or the file was removed)")
        path, fmt = found
        content_type = "application/zip" if path.suffix == ".zip" else "application/json"
        return FileResponse(open(path, "rb"), filename=f"{project_slug(job.project)}-{fmt}{path.suffix}",
                            content_type=content_type,
                            as_attachment=True)
