"""Labeling endpoints: thin views over annotator.services.labeling, and the query's files behind membership checks.

The services' refusals (invalid mask, stale version, query locked, round
closed) become HTTP answers in :mod:`annotator.api.exceptions`, as for every API view.

Media files are never served by URL of the storage: every image, mask and
suggestion goes through a view that checks the requester belongs to the
project (MEDIA_ROOT itself is not routed).

A query labeled on a tile of a large image (``selectors_labeling.query_tile``)
serves every file as the tile's crop, plus the whole image downscaled as
context (the page's lower pyramid level).
"""
from __future__ import annotations

import io
import mimetypes

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from PIL import Image as PILImage
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from learning.selection.tiles import Tile

from ..models import Annotation, Project, Query
from ..selectors_labeling import labeling_queue, query_suggestion, query_tile
from ..services import labeling
from ..services.derived_images import image_context, image_tile_crop
from ..services.errors import ServiceError
from ..services.superpixels import encode_superpixels, image_superpixels
from .labeling_serializers import (
    AnnotationVersionSerializer,
    ConflictSerializer,
    MaskUploadSerializer,
    NextQuerySerializer,
    QueryDetailSerializer,
    QueueSerializer,
    ReleaseSerializer,
    SaveParamsSerializer,
    SaveResultSerializer,
    SkipSerializer,
)
from .permissions import IsProjectMember

IMMUTABLE = "private, max-age=31536000, immutable"  # versions, suggestions and images are never rewritten
CONFLICT = OpenApiResponse(ConflictSerializer, description="Stale base version, locked by someone else, or closed")
PNG = {(200, "image/png"): OpenApiTypes.BINARY}


class PngParser(BaseParser):
    """A raw ``image/png`` body (the browser posts the mask as is; parameters go in the query string)."""

    media_type = "image/png"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        return stream.read() if stream is not None else b""


class QueryView(APIView):
    """Base for endpoints about one query: loads it and checks membership (403 for outsiders)."""

    permission_classes = [IsAuthenticated, IsProjectMember]

    def get_query(self, pk: int) -> Query:
        query = get_object_or_404(Query.objects.select_related("round__project", "image", "assignee"), pk=pk)
        self.check_object_permissions(self.request, query)
        return query

    def detail(self, query: Query) -> dict:
        return QueryDetailSerializer(query, context={"request": self.request}).data


class NextQueryView(APIView):
    """POST: lock and return the next query of the project for the requester (``query`` null when none)."""

    permission_classes = [IsAuthenticated, IsProjectMember]

    @extend_schema(request=None, responses=NextQuerySerializer)
    def post(self, request: Request, project_pk: int) -> Response:
        project = get_object_or_404(Project, pk=project_pk)
        self.check_object_permissions(request, project)
        query = labeling.query_next(project=project, user=request.user)
        if query is None:
            summary = labeling_queue(project=project, user=request.user)
            reason = (
                "The project is archived: nothing is handed out to label." if project.archived_at is not None
                else "No queries are open: the model is training or selecting the next round."
                if not summary.is_labeling else "Every open query is being labeled by someone else."
                if summary.pending else "All queries of this round are done."
            )
            return Response({"query": None, "detail": reason})
        query = Query.objects.select_related("round__project", "image", "assignee").get(pk=query.pk)
        return Response({"query": QueryDetailSerializer(query, context={"request": request}).data})


class QueueView(APIView):
    """GET: the project's labeling round in numbers, and the requester's own locks."""

    permission_classes = [IsAuthenticated, IsProjectMember]

    @extend_schema(responses=QueueSerializer)
    def get(self, request: Request, project_pk: int) -> Response:
        project = get_object_or_404(Project, pk=project_pk)
        self.check_object_permissions(request, project)
        summary = labeling_queue(project=project, user=request.user)
        return Response({
            "round": None if summary.round is None else {
                "id": summary.round.pk, "number": summary.round.number, "state": summary.round.state,
            },
            "pending": summary.pending, "available": summary.available, "in_progress": summary.in_progress,
            "submitted": summary.submitted, "skipped": summary.skipped,
            "my_submitted": summary.my_submitted, "my_seconds": summary.my_seconds,
            "held": [query.pk for query in summary.held],
        })


class QueryDetailView(QueryView):
    @extend_schema(responses=QueryDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.detail(self.get_query(pk)))


class ClaimView(QueryView):
    """POST: lock this query for the requester (the page of a query opened by its URL)."""

    @extend_schema(request=None, responses={200: QueryDetailSerializer, 409: CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        query = labeling.query_claim(query=self.get_query(pk), user=request.user)
        return Response(self.detail(self.get_query(query.pk)))


def _mask_upload(request: Request) -> tuple[bytes, dict]:
    """The PNG and the parameters of a save: a multipart ``mask`` file, or a raw image/png body + query string."""
    params = request.query_params.dict()
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise ValidationError({"mask": f"the upload is {length} bytes, above DATA_UPLOAD_MAX_MEMORY_SIZE"})
    try:
        data = request.data
    except ParseError as exc:
        raise ValidationError({"mask": str(exc.detail)}) from exc
    if isinstance(data, bytes):
        png = data
    else:
        params.update({key: value for key, value in data.items() if key != "mask"})
        upload = request.FILES.get("mask")
        if upload is None:
            raise ValidationError({"mask": "send the mask as a multipart file field 'mask' or a raw image/png body"})
        png = upload.read()
    if not png:
        raise ValidationError({"mask": "the mask is empty"})
    return png, params


class SaveView(QueryView):
    """POST a mask PNG: a new version of the image's mask (a draft unless ``submit``).

    201 with the new version; 200 when a draft was identical to the latest version
    (nothing stored, the lock renewed); 409 with the latest version when
    ``base_version`` is stale; 400 when the mask does not fit the image or classes.
    """

    parser_classes = [PngParser, MultiPartParser, FormParser, JSONParser]
    submit = False

    @extend_schema(
        request={"image/png": OpenApiTypes.BINARY, "multipart/form-data": MaskUploadSerializer},
        parameters=[
            OpenApiParameter("base_version", int, description="The image's version you started from (0: none); "
                             "in the query string with a raw PNG body"),
            OpenApiParameter("time_spent", float, description="Active seconds since your previous save"),
            OpenApiParameter("submit", bool, description="Submit instead of saving a draft"),
        ],
        responses={201: SaveResultSerializer, 200: SaveResultSerializer, 400: OpenApiResponse(
            description="The mask does not fit the image size or the class list"), 409: CONFLICT},
    )
    def post(self, request: Request, pk: int) -> Response:
        query = self.get_query(pk)
        png, raw_params = _mask_upload(request)
        params = SaveParamsSerializer(data=raw_params)
        params.is_valid(raise_exception=True)
        result = labeling.annotation_save(
            query=query, user=request.user, mask_png=png,
            base_version=params.validated_data["base_version"],
            submit=self.submit or params.validated_data["submit"],
            time_spent=params.validated_data["time_spent"],
        )
        body = {
            "annotation": AnnotationVersionSerializer(result.annotation).data,
            "created": result.created,
            "next_round": None if result.next_round is None else result.next_round.number,
        }
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class SubmitView(SaveView):
    submit = True


class SkipView(QueryView):
    @extend_schema(request=SkipSerializer, responses={200: QueryDetailSerializer, 409: CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        query = self.get_query(pk)
        params = SkipSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        labeling.query_skip(query=query, user=request.user, **params.validated_data)
        return Response(self.detail(self.get_query(pk)))


class ReleaseView(QueryView):
    @extend_schema(request=ReleaseSerializer, responses=QueryDetailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        query = self.get_query(pk)
        params = ReleaseSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        labeling.query_release(query=query, user=request.user, **params.validated_data)
        return Response(self.detail(self.get_query(pk)))


def _file_response(field, *, content_type: str | None = None, cache: str = IMMUTABLE) -> FileResponse:
    if not field:
        raise Http404("no such file")
    try:
        handle = field.open("rb")
    except (FileNotFoundError, OSError) as exc:
        raise Http404("the file is missing from storage") from exc
    content_type = content_type or mimetypes.guess_type(field.name)[0] or "application/octet-stream"
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = cache
    return response


def _png_response(data: bytes, *, cache: str = IMMUTABLE) -> HttpResponse:
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = cache
    return response


def _crop_response(field, box: tuple[int, int, int, int]) -> HttpResponse:
    """The ``box`` ([x0, y0, x1, y1]) of a stored image or 8-bit mask as a lossless PNG, in its own mode."""
    if not field:
        raise Http404("no such file")
    try:
        with field.open("rb") as handle, PILImage.open(handle) as picture:
            part = picture.crop(box)
            buffer = io.BytesIO()
            part.save(buffer, format="PNG", compress_level=1)
    except (FileNotFoundError, OSError) as exc:
        raise Http404("the file is missing from storage") from exc
    return _png_response(buffer.getvalue())


def _query_file(query: Query, field, *, content_type: str | None = None):
    """A file of ``query`` as the page loads it: the tile's crop for a tile query, else the stored file."""
    tile = query_tile(query=query)
    if tile is None:
        return _file_response(field, content_type=content_type)
    return _crop_response(field, tile.box)


def _derived_file(image, make, content_type: str) -> FileResponse:
    """A file derived from ``image``: made on first request, then read from storage (services/derived_images.py)."""
    try:
        name = make()
    except ServiceError as exc:
        raise Http404(str(exc)) from exc
    response = FileResponse(image.file.storage.open(name, "rb"), content_type=content_type)
    response["Cache-Control"] = IMMUTABLE
    return response


def _box_param(request: Request, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The optional ``?box=x0,y0,x1,y1`` of a mask request, checked against the image."""
    raw = request.query_params.get("box")
    if raw is None:
        return None
    try:
        x0, y0, x1, y1 = (int(value) for value in raw.split(","))
    except ValueError as exc:
        raise ValidationError({"box": "give four integers x0,y0,x1,y1"}) from exc
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValidationError({"box": f"must lie inside the {width}×{height} image"})
    return x0, y0, x1, y1


class QueryImageView(QueryView):
    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY},
                   description="The image; for a tile query, the tile's crop as a PNG")
    def get(self, request: Request, pk: int) -> FileResponse | HttpResponse:
        query = self.get_query(pk)
        tile = query_tile(query=query)
        if tile is None:
            return _file_response(query.image.file)
        return _derived_file(query.image, lambda: image_tile_crop(image=query.image, box=tile.box), "image/png")


class QueryContextView(QueryView):
    """GET the whole image downscaled to ``MASKLOOP_TILE_CONTEXT_SIDE``: a tile's surroundings (404 unless tiled)."""

    @extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY})
    def get(self, request: Request, pk: int) -> HttpResponse:
        query = self.get_query(pk)
        if query_tile(query=query) is None:
            raise Http404("this query is labeled on its whole image")
        side = settings.MASKLOOP_TILE_CONTEXT_SIDE
        return _derived_file(query.image, lambda: image_context(image=query.image, side=side), "image/jpeg")


class QueryRegionView(QueryView):
    @extend_schema(responses=PNG, description="255 inside the queried region, 0 outside (a tile query: the tile's)")
    def get(self, request: Request, pk: int) -> FileResponse | HttpResponse:
        query = self.get_query(pk)
        return _query_file(query, query.region_mask, content_type="image/png")


class QuerySuggestionView(QueryView):
    @extend_schema(responses=PNG, description="mask: class ids, 255 = not suggested; confidence: uint8 = conf × 255")
    def get(self, request: Request, pk: int, which: str) -> FileResponse:
        if which not in ("mask", "confidence"):
            raise Http404("a suggestion has a mask and a confidence map")
        query = self.get_query(pk)
        suggestion = query_suggestion(query=query)
        if suggestion is None:
            raise Http404("this query has no suggestion")
        field = suggestion.mask if which == "mask" else suggestion.confidence
        return _query_file(query, field, content_type="image/png")


class QuerySuperpixelsView(QueryView):
    """GET the image's SLIC superpixels as a 16-bit PNG of region ids (computed on first request)."""

    @extend_schema(responses=PNG)
    def get(self, request: Request, pk: int) -> FileResponse:
        query = self.get_query(pk)
        image = query.image
        labels = image_superpixels(image=image)  # computes and stores them on first use
        tile: Tile | None = query_tile(query=query)
        if tile is None:
            return _file_response(image.superpixels, content_type="image/png")
        # Computed per tile (services/superpixels.py): the crop holds whole superpixels only.
        return _png_response(encode_superpixels(labels[tile.slices]), cache="private, no-cache")


class AnnotationMaskView(APIView):
    permission_classes = [IsAuthenticated, IsProjectMember]

    @extend_schema(responses=PNG, parameters=[OpenApiParameter(
        "box", str, description="x0,y0,x1,y1: only this part of the mask (a tile)")])
    def get(self, request: Request, pk: int) -> FileResponse | HttpResponse:
        annotation = get_object_or_404(Annotation.objects.select_related("image__project"), pk=pk)
        self.check_object_permissions(request, annotation)
        box = _box_param(request, annotation.image.width, annotation.image.height)
        if box is not None:  # a tile's part of the version (the labeling page of a tile query)
            return _crop_response(annotation.mask, box)
        return _file_response(annotation.mask, content_type="image/png")
