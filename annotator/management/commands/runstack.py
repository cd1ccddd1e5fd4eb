"""Start the whole app on one machine: a Celery worker (both queues) and the web server.

`make run` calls this after `migrate` and `demo_setup`. Ctrl+C stops both. In
production run them separately (see the README): gunicorn for the web, and
`celery -A config worker -Q training` on GPU machines, `-Q default` elsewhere.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run a Celery worker (queues default + training) and the development web server together."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")
        parser.add_argument("--no-worker", action="store_true", help="only the web server")

    def handle(self, *args, host, port, no_worker, **options):
        root = Path(settings.BASE_DIR)
        log_dir = Path(settings.VAR_DIR) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        worker = None
        if not no_worker:
            worker_log = open(log_dir / "worker.log", "a")
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
                 "-Q", "default,training", "--loglevel", "INFO", "-n", "local@%h"],
                cwd=root, stdout=worker_log, stderr=subprocess.STDOUT, env=dict(os.environ),
            )
            self.stdout.write(f"Celery worker started (pid {worker.pid}), log: {log_dir / 'worker.log'}")
        self.stdout.write(self.style.SUCCESS(f"maskloop is running on http://{host}:{port}/  (Ctrl+C stops it)"))
        web = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"{host}:{port}"], cwd=root)
        signal.signal(signal.SIGTERM, _interrupt)  # a TERM stops both, like Ctrl+C
        try:
            web.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for process in (web, worker):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in (web, worker):
                if process is not None:
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
