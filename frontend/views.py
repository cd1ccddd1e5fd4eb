from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotator.models import Membership
from annotator.selectors import project_list_for_user
from annotator.services.projects import project_may_create


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """'My projects': every project the user is a member of (all of them for staff), with its queue and lead pages."""
    projects = list(project_list_for_user(user=request.user))
    leads_any = request.user.is_staff or any(p.role == Membership.Role.LEAD for p in projects)
    # Annotators who lead nothing are not offered the button unless they were given the permission.
    can_create = project_may_create(request.user) and (leads_any or request.user.has_perm("annotator.add_project"))
    return render(request, "frontend/home.html", {"projects": projects, "can_create": can_create})
