"""`make run`'s stack: gunicorn (not runserver), a worker per queue, beat, and SQLite that waits instead of failing."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from annotator.management.commands.runstack import stack_commands
from tests.app.test_settings import ROOT


def test_the_stack_is_gunicorn_a_worker_per_queue_and_beat(tmp_path):
    commands = stack_commands(host="127.0.0.1", port="8123", web_workers=2, web_threads=4, var_dir=tmp_path)
    assert commands["web"][1:4] == ["-m", "gunicorn", "config.wsgi"]
    assert "runserver" not in " ".join(commands["web"])
    queues = {name: command[command.index("-Q") + 1] for name, command in commands.items() if "-Q" in command}
    assert queues == {"worker-training": "training", "worker-default": "default"}
    assert "beat" in commands["beat"]
    assert list(stack_commands(host="h", port="1", web_workers=1, web_threads=1, var_dir=tmp_path,
                               with_workers=False)) == ["web"]


@pytest.mark.django_db
def test_sqlite_waits_for_locks_in_wal_mode():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    with connection.cursor() as cursor:
        pragmas = {name: cursor.execute(f"PRAGMA {name}").fetchone()[0]
                   for name in ("journal_mode", "synchronous", "busy_timeout")}
    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 30_000}  # 1 = NORMAL
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_runstack_serves_the_login_page_and_static_files_through_gunicorn(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DEBUG")}
    env["MASKLOOP_VAR_DIR"] = str(tmp_path)
    stack = subprocess.Popen([sys.executable, "manage.py", "runstack", "--no-worker", "--port", str(port),
                              "--web-workers", "1", "--web-threads", "2"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, pages = time.monotonic() + 60, {}
        while time.monotonic() < deadline and len(pages) < 2:
            for path in ("/login/", "/static/frontend/label/labeler.js"):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                        pages[path] = (response.status, response.headers["Server"])
                except OSError:
                    time.sleep(0.3)
        assert {path: status for path, (status, _) in pages.items()} == {
            "/login/": 200, "/static/frontend/label/labeler.js": 200}
        assert all(server.startswith("gunicorn") for _, server in pages.values())
    finally:
        stack.terminate()
        output = stack.communicate(timeout=30)[0].decode()
    assert stack.returncode == 0, output
    assert Path(tmp_path / "logs" / "access.log").exists()
