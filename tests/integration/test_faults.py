"""Faults on the production stack (gunicorn + PostgreSQL + a Redis broker), with servers the tests own.

- The broker (a redis-server of this test) is killed while annotators label
  and restarted empty: labeling goes on, the round job queued meanwhile is
  kept and sent once the broker is back.
- The database (a PostgreSQL cluster of this test, initdb'd in a temp
  folder) is stopped and started during labeling: saves in between answer
  503 with a sentence, the next save after the restart succeeds, and no
  version is lost or stored twice.

The system's PostgreSQL and Redis are never touched. Run via tests/integration/run.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from annotator.imaging import encode_png
from annotator.models import Job, Round
from tests.conftest import database_url_for_subprocess, stop_process, wait_for
from tests.factories import make_image, make_query, make_round
from tests.integration.servers import (
    ROOT, PostgresCluster, RedisServer, gunicorn, postgres_bin, request,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

if os.environ.get("MASKLOOP_INTEGRATION") != "1":
    pytest.skip(
        "integration tier not configured: run `python tests/integration/run.py` (make test does) "
        "with PostgreSQL and Redis on 127.0.0.1",
        allow_module_level=True,
    )

W, H = 48, 36


def mask_png(value: int) -> bytes:
    return encode_png(np.full((H, W), value, np.uint8))


def token_for(base: str, username: str, password: str) -> str:
    status, body = request("POST", f"{base}/api/auth/token/", json_body={"username": username, "password": password})
    assert status == 200, body
    return body["token"]


def save(base: str, token: str, query: int, *, base_version: int, submit: bool = False):
    action = "submit" if submit else "annotations"
    return request("POST", f"{base}/api/labeling/queries/{query}/{action}/?base_version={base_version}",
                   token=token, png=mask_png(base_version % 2))


@pytest.mark.django_db(transaction=True)
def test_the_broker_killed_and_restarted_loses_no_label_and_no_round_job(users, project, settings, tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis = RedisServer(tmp_path / "redis").start()
    round0 = make_round(project, number=0, state=Round.State.LABELING)
    first, last = (make_query(round0, make_image(project, size=(W, H))) for _ in range(2))
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "MEDIA_ROOT": str(settings.MEDIA_ROOT),
           "MODELS_STORE_ROOT": str(settings.MODELS_STORE_ROOT), "OMP_NUM_THREADS": "1",
           # As the README's production recipe: broker and cache on one Redis.
           "CELERY_BROKER_URL": f"{redis.url}/0", "CACHE_URL": f"{redis.url}/1", "MASKLOOP_JOB_SWEEP_SECONDS": "2"}
    web, base = gunicorn(env, tmp_path / "web.log")
    # The default queue's worker with beat inside it: it sweeps every 2 s once the broker is back.
    worker_log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", "default", "-B",
         "--schedule", str(tmp_path / "beat"), "-n", f"faults-{os.getpid()}@%h", "--without-heartbeat",
         "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=open(worker_log, "w"), stderr=subprocess.STDOUT)
    try:
        token = token_for(base, "annotator", "pw-annotator")
        wait_for(lambda: "ready" in worker_log.read_text(), timeout=60, what="the worker")
        redis.kill()

        # Labeling goes on: sessions and tokens are in the database, the broker is needed only to start jobs.
        assert save(base, token, first.pk, base_version=0)[0] == 201
        assert save(base, token, first.pk, base_version=1, submit=True)[0] == 201
        status, body = save(base, token, last.pk, base_version=0, submit=True)
        assert status == 201 and body["next_round"] == 1, body
        job = Job.objects.get(round__number=1)
        assert (job.state, job.celery_task_id) == (Job.State.QUEUED, "")
        assert "task broker could not be reached" in job.message
        for annotation in round0.queries.get(pk=last.pk).image.annotations.all():
            assert Path(annotation.mask.path).is_file()

        redis.start()  # the same port, empty: whatever the broker held is gone
        wait_for(lambda: Job.objects.exclude(celery_task_id="").filter(pk=job.pk).exists(), timeout=120,
                   what="the sweep to send the round job again", interval=0.5)
        wait_for(lambda: redis.llen("training") == 1, timeout=10, what="the round job's message in 'training'")
        job.refresh_from_db()
        assert job.state == Job.State.QUEUED and "sent again" in job.log
    finally:
        stop_process(web)
        stop_process(worker)
        redis.kill()


SEED = """
import json
import django
django.setup()
from django.contrib.auth import get_user_model
from annotator.models import Membership, Round
from annotator.services.projects import ClassSpec, membership_set, project_create
from tests.factories import make_image, make_query, make_round
users = get_user_model().objects
lead = users.create_user("lead", password="pw-lead")
annotator = users.create_user("annotator", password="pw-annotator")
project = project_create(name="Restart", created_by=lead,
                         classes=[ClassSpec(0, "road", "#804080", "1"), ClassSpec(1, "car", "#400080", "2")])
membership_set(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
round_ = make_round(project, number=0, state=Round.State.LABELING)
print(json.dumps({"project": project.pk,
                  "queries": [make_query(round_, make_image(project, size=(%d, %d))).pk for _ in range(2)]}))
""" % (W, H)


THREADS = 4


def all_parallel(call) -> list:
    """``call`` from twice as many client threads as the server has: every server thread serves some."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2 * THREADS) as pool:
        return list(pool.map(lambda _: call(), range(2 * THREADS)))


def test_a_database_restart_during_labeling_answers_503_then_loses_no_version(tmp_path):
    if postgres_bin() is None or shutil.which("runuser") is None and os.geteuid() == 0:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin) to start a throwaway cluster")
    cluster = PostgresCluster().init()
    web = None
    try:
        cluster.start()
        cluster.createdb("maskloop")
        env = {**os.environ, "DATABASE_URL": cluster.url("maskloop"), "MEDIA_ROOT": str(tmp_path / "media"),
               "MODELS_STORE_ROOT": str(tmp_path / "models"), "CACHE_URL": f"file://{tmp_path / 'cache'}",
               "PYTHONPATH": str(ROOT),
               # Persistent connections: the hard case, a connection opened before the restart is dead after it.
               "DB_CONN_MAX_AGE": "60"}
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True, timeout=300)
        seeded = json.loads(subprocess.run([sys.executable, "-c", SEED], cwd=ROOT, env=env, check=True,
                                           capture_output=True, text=True, timeout=120).stdout)
        query, other = seeded["queries"]
        web, base = gunicorn(env, tmp_path / "web.log", threads=THREADS)
        token = token_for(base, "annotator", "pw-annotator")
        queue = f"{base}/api/labeling/projects/{seeded['project']}/queue/"
        # Every server thread opens its connection: all of them die with the restart below.
        assert all_parallel(lambda: request("GET", queue, token=token)[0]) == [200] * 2 * THREADS
        assert save(base, token, query, base_version=0)[0] == 201

        cluster.stop()
        for status, body in (save(base, token, query, base_version=1),
                             request("POST", f"{base}/api/labeling/projects/{seeded['project']}/next/", token=token)):
            assert status == 503 and body["code"] == "database_unavailable", (status, body)
        cluster.start()

        # Every thread's connection died with the server: each gets a working one on its next request.
        assert all_parallel(lambda: request("GET", queue, token=token)[0]) == [200] * 2 * THREADS
        for version in (1, 2):
            status, body = save(base, token, query, base_version=version)
            assert status == 201 and body["annotation"]["version"] == version + 1, body
        assert save(base, token, query, base_version=3, submit=True)[0] == 201
        assert save(base, token, other, base_version=0)[0] == 201
        status, listed = request("GET", f"{base}/api/annotations/?query={query}&ordering=version", token=token)
        assert [row["version"] for row in listed["results"]] == [1, 2, 3, 4]
        files = [p for p in (tmp_path / "media").rglob("*.png") if "annotations" in p.parts]
        assert len(files) == 5  # four versions of one image, one of the other: nothing orphaned
    finally:
        if web is not None:
            stop_process(web)
        cluster.remove()
