import math

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotator.login_throttle import client_address, login_attempt_wait, login_succeeded
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
    return render(request, "frontend/home.html", {
        "projects": [p for p in projects if p.archived_at is None],
        "archived": [p for p in projects if p.archived_at is not None], "can_create": can_create})


class LoginView(auth_views.LoginView):
    """Django's log-in page; past the failure limit for a user name from an address it answers 429 with a message.

    The rule (and the count) is the token endpoint's: annotator.login_throttle.
    """

    template_name = "frontend/login.html"

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        wait = login_attempt_wait(username=request.POST.get("username", ""), address=client_address(request))
        if wait:
            # An unbound form: a bound one would check the password while rendering its errors.
            context = self.get_context_data(form=self.get_form_class()(request), retry_minutes=math.ceil(wait / 60))
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        login_succeeded(username=self.request.POST.get("username", ""), address=client_address(self.request))
        return super().form_valid(form)
