"""Review endpoints under /api/review/: thin views over annotator.services.review.

Reviewers (the project's leads and members with the reviewer role) list,
read and decide reviews; a decision already taken, a stale fix or a review
of one's own mask is refused by the service (409 / 403, see
:mod:`annotator.api.exceptions`). The image, masks and suggestion are
fetched through the labeling endpoints' member-checked file views.
"""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.types import OpenApiTypes
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import Agreement, Project, Review
from ..selectors_review import membership_can_review, review_list, review_summary
from ..services import review as review_services
from .labeling_views import CONFLICT, PngParser, _mask_upload
from .permissions import project_of
from .review_serializers import (
    AgreementSerializer,
    DecisionSerializer,
    FixParamsSerializer,
    FixUploadSerializer,
    RejectSerializer,
    ReviewSerializer,
    ReviewSummarySerializer,
)



class IsProjectReviewer(BasePermission):
    """Leads and reviewers of the object's project (staff count as leads)."""

    message = "Only the project's leads and reviewers can review."

    def has_object_permission(self, request, view, obj) -> bool:
        project = project_of(obj)
        return project is not None and membership_can_review(project=project, user=request.user)


class ProjectReviewView(APIView):
    permission_classes = [IsAuthenticated, IsProjectReviewer]

    def get_project(self, pk: int) -> Project:
        project = get_object_or_404(Project, pk=pk)
        self.check_object_permissions(self.request, project)
        return project


class ReviewListView(ProjectReviewView):
    """GET the project's reviews, oldest first (``state``: pending by default; ``all`` for every state)."""

    @extend_schema(parameters=[OpenApiParameter("state", str, enum=[*Review.State.values, "all"])],
                   responses=ReviewSerializer(many=True))
    def get(self, request: Request, project_pk: int) -> Response:
        project = self.get_project(project_pk)
        state = request.query_params.get("state", Review.State.PENDING)
        reviews = review_list(project=project, state=None if state == "all" else state)[:500]
        return Response(ReviewSerializer(reviews, many=True).data)


class ReviewSummaryView(ProjectReviewView):
    """GET what waits for review and for how long, acceptance per annotator, agreement per annotator and class."""

    @extend_schema(responses=ReviewSummarySerializer)
    def get(self, request: Request, project_pk: int) -> Response:
        return Response(ReviewSummarySerializer(review_summary(project=self.get_project(project_pk))).data)


class AgreementListView(ProjectReviewView):
    @extend_schema(responses=AgreementSerializer(many=True))
    def get(self, request: Request, project_pk: int) -> Response:
        project = self.get_project(project_pk)
        agreements = (Agreement.objects.filter(query__round__project=project)
                      .select_related("first__author", "second__author", "merged__author"))[:500]
        return Response(AgreementSerializer(agreements, many=True).data)


class ReviewView(APIView):
    permission_classes = [IsAuthenticated, IsProjectReviewer]

    def get_review(self, pk: int) -> Review:
        review = get_object_or_404(Review.objects.select_related(
            "query__round__project", "query__image", "annotation__author", "annotation__query", "reviewer", "fix",
            "agreement__first__author", "agreement__second__author", "agreement__merged"), pk=pk)
        self.check_object_permissions(self.request, review)
        return review

    def detail(self, pk: int) -> Response:
        return Response(ReviewSerializer(self.get_review(pk)).data)


class ReviewDetailView(ReviewView):
    @extend_schema(responses=ReviewSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return self.detail(pk)


class ReviewAcceptView(ReviewView):
    """POST: the mask is right as submitted."""

    @extend_schema(request=DecisionSerializer, responses={200: ReviewSerializer, 409: CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        params = DecisionSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        review_services.review_accept(review=self.get_review(pk), user=request.user, **params.validated_data)
        return self.detail(pk)


class ReviewRejectView(ReviewView):
    """POST a comment (and optional marks): the query goes back to its annotator."""

    @extend_schema(request=RejectSerializer, responses={200: ReviewSerializer, 409: CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        params = RejectSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        review_services.review_reject(review=self.get_review(pk), user=request.user, **params.validated_data)
        return self.detail(pk)


class ReviewFixView(ReviewView):
    """POST the corrected mask (raw image/png body + query string, or multipart ``mask``): a new version."""

    parser_classes = [PngParser, MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        request={"image/png": OpenApiTypes.BINARY, "multipart/form-data": FixUploadSerializer},
        parameters=[OpenApiParameter("base_version", int, description="The version the fix starts from"),
                    OpenApiParameter("comment", str), OpenApiParameter("time_spent", float)],
        responses={201: ReviewSerializer, 400: OpenApiResponse(description="The mask does not fit"), 409: CONFLICT},
    )
    def post(self, request: Request, pk: int) -> Response:
        review = self.get_review(pk)
        png, raw = _mask_upload(request)
        params = FixParamsSerializer(data=raw)
        params.is_valid(raise_exception=True)
        review_services.review_fix(review=review, user=request.user, mask_png=png, **params.validated_data)
        return Response(ReviewSerializer(self.get_review(pk)).data, status=status.HTTP_201_CREATED)
