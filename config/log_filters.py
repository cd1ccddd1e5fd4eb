"""Logging filters of the settings' LOGGING."""
from __future__ import annotations

import logging


class NoTracebackForClientErrors(logging.Filter):
    """Keep a 4xx line of ``django.request`` to one line: drop the traceback Django attaches to it.

    Django logs a refused request (403 PermissionDenied, a 400 SuspiciousOperation) as a warning *with*
    the exception that refused it; that traceback shows the refusal working, not a fault, and buries
    real errors. 5xx lines keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500:
            record.exc_info, record.exc_text = None, None
        return True
