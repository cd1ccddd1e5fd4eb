"""Start the whole app on one machine: gunicorn, a Celery worker per queue, and Celery beat.

`make run` calls this after `migrate`, `demo_setup` and `collectstatic`.
Ctrl+C stops everything. gunicorn (a few processes × threads, static files
through WhiteNoise) rather than runserver, so a small team labeling at once
is served in parallel; SQLite is in WAL mode with a busy timeout (settings).
Training has its own worker so short jobs (selection, imports, exports) never
wait behind it; beat runs the sweep that re-queues jobs of dead workers. In
production run the same processes separately (see the README).
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


def stack_commands(*, host: str, port: str, web_workers: int, web_threads: int, var_dir: Path,
                   with_workers: bool = True) -> dict[str, list[str]]:
    """The command line of each process of the stack, by name (the name of its log file under var/logs/)."""
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    commands = {
        "web": [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"{host}:{port}",
                "--workers", str(web_workers), "--threads", str(web_threads), "--timeout", "120",
                "--access-logfile", str(var_dir / "logs" / "access.log"),
                "--no-control-socket"],  # its default path is per user: a second stack would take it over
    }
    if with_workers:
        # Stable names: a restarted worker re-queues the jobs its previous process was running.
        commands["worker-training"] = celery + ["worker", "--pool", "solo", "-Q", "training", "-n", "training@%h",
                                                "--loglevel", "INFO"]
        commands["worker-default"] = celery + ["worker", "--pool", "solo", "-Q", "default", "-n", "default@%h",
                                               "--loglevel", "INFO"]
        commands["beat"] = celery + ["beat", "--schedule", str(var_dir / "celerybeat-schedule"), "--loglevel", "INFO"]
    return commands


class Command(BaseCommand):
    help = "Run gunicorn, a Celery worker per queue (training, default) and Celery beat together."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes")
        parser.add_argument("--web-threads", type=int, default=4, help="threads per gunicorn process")
        parser.add_argument("--no-worker", action="store_true", help="only the web server")

    def handle(self, *args, host, port, web_workers, web_threads, no_worker, **options):
        root = Path(settings.BASE_DIR)
        var_dir = Path(settings.VAR_DIR)
        log_dir = var_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        commands = stack_commands(host=host, port=port, web_workers=web_workers, web_threads=web_threads,
                                  var_dir=var_dir, with_workers=not no_worker)
        processes: dict[str, subprocess.Popen] = {}
        signal.signal(signal.SIGTERM, _interrupt)  # a TERM stops everything, like Ctrl+C
        try:
            for name, command in commands.items():
                if name == "web":
                    continue
                log = open(log_dir / f"{name}.log", "a")
                processes[name] = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                                   env=dict(os.environ))
                self.stdout.write(f"{name} started (pid {processes[name].pid}), log: {log_dir / f'{name}.log'}")
            self.stdout.write(self.style.SUCCESS(f"maskloop is running on http://{host}:{port}/  (Ctrl+C stops it)"))
            processes["web"] = subprocess.Popen(commands["web"], cwd=root)
            processes["web"].wait()
        except KeyboardInterrupt:
            pass
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
