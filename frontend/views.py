from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotator.selectors import project_list_for_user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """'My projects': every project the user is a member of (all of them for staff)."""
    return render(request, "frontend/home.html", {"projects": project_list_for_user(user=request.user)})
