from rest_framework import mixins, viewsets

from ..models import Job, Project
from ..selectors import project_list_for_user
from .permissions import IsProjectLeadOrReadOnly, IsProjectMember
from .serializers import JobSerializer, ProjectSerializer


class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet):
    serializer_class = ProjectSerializer
    permission_classes = [IsProjectLeadOrReadOnly]

    def get_queryset(self):
        return project_list_for_user(user=self.request.user).prefetch_related("classes")


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = JobSerializer
    permission_classes = [IsProjectMember]
    filterset_fields = ["project", "state", "kind"]

    def get_queryset(self):
        projects = project_list_for_user(user=self.request.user).values("pk")
        jobs = Job.objects.filter(project__in=projects)
        if project := self.request.query_params.get("project"):
            jobs = jobs.filter(project_id=project)
        return jobs
