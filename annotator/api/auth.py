"""POST /api/auth/token/: DRF's token view behind the log-in page's brute-force rule (annotator.login_throttle)."""
from __future__ import annotations

from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

from ..login_throttle import client_address, login_attempt_wait, login_succeeded


def _username(request) -> str:
    data = request.data
    return str(data.get("username", "")) if hasattr(data, "get") else ""


class LoginAttemptThrottle(BaseThrottle):
    """Counts the request as a log-in attempt of its user name from its address; refuses past the limit."""

    def allow_request(self, request, view) -> bool:
        self.seconds = login_attempt_wait(username=_username(request), address=client_address(request))
        return not self.seconds

    def wait(self) -> float:
        return self.seconds


class ObtainAuthTokenThrottled(ObtainAuthToken):
    """Exchange a user name and password for a token; 429 after too many failures for that name from that address."""

    throttle_classes = [LoginAttemptThrottle]

    def throttled(self, request, wait):
        raise Throttled(wait, detail="Too many failed log-ins for this user name from your address.")

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)  # a wrong password raises: the attempt stays counted
        login_succeeded(username=_username(request), address=client_address(request))
        return response


obtain_auth_token = ObtainAuthTokenThrottled.as_view()
