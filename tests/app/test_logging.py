"""The server log: every line once, and a refused request is one line, never a traceback."""
import subprocess
import sys

from tests.app.test_settings import ROOT

# What Django's request handler does for a view that raises PermissionDenied (django.core.handlers.exception)
# and for one that crashes, then a warning from the app's own code.
SCRIPT = """
import logging, os
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import django
django.setup()
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.utils.log import log_response

def raised(error):
    try:
        raise error
    except Exception as caught:
        return caught

log_response("Forbidden (Permission denied): %s", "/projects/1/dashboard/", response=HttpResponse(status=403),
             exception=raised(PermissionDenied("Only the project's leads can open this page.")))
log_response("Internal Server Error: %s", "/boom/", response=HttpResponse(status=500),
             exception=raised(ZeroDivisionError("boom")))
logging.getLogger("annotator.services.jobs").warning("job 7 (export) not sent: broker down")
logging.getLogger("django.security.csrf").warning("Forbidden (CSRF cookie not set.): /x/")
"""


def test_each_warning_is_printed_once_and_a_403_carries_no_traceback(tmp_path):
    env = {"MASKLOOP_VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "DEBUG": "1"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    log = result.stderr
    for line in ("Forbidden (Permission denied): /projects/1/dashboard/", "Internal Server Error: /boom/",
                 "job 7 (export) not sent: broker down", "Forbidden (CSRF cookie not set.): /x/"):
        assert log.count(line) == 1, log
    assert log.count("Traceback") == 1, log  # the 500's, not the 403's
    assert "PermissionDenied" not in log and "ZeroDivisionError: boom" in log
    assert "WARNING django.request: Forbidden" in log  # time, level and logger name on every line
