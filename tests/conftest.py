"""Fixtures that build real objects: projects with classes, users with roles, images on disk."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage


def pytest_sessionfinish(session, exitstatus):
    from django.conf import settings

    if Path(settings.VAR_DIR).name.startswith("test-"):
        shutil.rmtree(settings.VAR_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODELS_STORE_ROOT = tmp_path / "models"
    # Tests never download: pretrained weights come only from files a test places in its own hub cache.
    settings.MASKLOOP_PRETRAINED_DOWNLOAD = False
    hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch-hub"))
    yield
    torch.hub.set_dir(hub)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def make_dataset(tmp_path):
    """Write an import-layout folder: images/, masks/, classes.json with ``num_classes`` classes."""

    def make(count: int = 3, *, size=(40, 30), num_classes: int = 3, name: str = "ds", masks: bool = True) -> Path:
        from annotator.services.projects import DEFAULT_PALETTE

        root = tmp_path / name
        (root / "images").mkdir(parents=True)
        if masks:
            (root / "masks").mkdir()
        rng = np.random.default_rng(len(name) + count)
        for i in range(count):
            image = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            (root / "images" / f"frame_{i:03d}.jpg").write_bytes(jpeg_bytes(image))
            if masks:
                mask = rng.integers(0, num_classes, (size[1], size[0]), dtype=np.uint8)
                (root / "masks" / f"frame_{i:03d}.png").write_bytes(png_bytes(mask))
        classes = [{"id": i, "name": f"class{i}", "color": DEFAULT_PALETTE[i]} for i in range(num_classes)]
        import json

        (root / "classes.json").write_text(json.dumps({"classes": classes, "ignore_index": 255}))
        return root

    return make


@pytest.fixture
def users(django_user_model):
    make = django_user_model.objects.create_user
    return {
        "lead": make("lead", password="pw-lead"),
        "annotator": make("annotator", password="pw-annotator"),
        "outsider": make("outsider", password="pw-outsider"),
        "admin": django_user_model.objects.create_superuser("admin", password="pw-admin"),
    }


@pytest.fixture
def project(users):
    from annotator.models import Membership
    from annotator.services.projects import ClassSpec, membership_set, project_create

    project = project_create(
        name="Streets",
        classes=[ClassSpec(0, "road", "#804080", "1"), ClassSpec(1, "car", "#400080", "2"),
                 ClassSpec(2, "sky", "#808080", "3")],
        created_by=users["lead"],
    )
    membership_set(project=project, user=users["annotator"], role=Membership.Role.ANNOTATOR)
    return project


def database_url_for_subprocess() -> str:
    """The URL of the database this test run uses (the test database), for a worker process."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    if db["ENGINE"].endswith("postgresql"):
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    raise NotImplementedError(db["ENGINE"])


@pytest.fixture
def start_worker(settings, transactional_db, tmp_path):
    """``start_worker(name)``: a real `celery worker` process on this run's broker and test database.

    Not eager mode: the task goes through the broker to another process. Every
    worker started is stopped (TERM, then KILL) when the test ends.
    """
    import os
    import subprocess
    import sys

    processes = []

    def start(name: str = "test", *, queues: str = "default,training"):
        env = dict(os.environ)
        env.update(
            DATABASE_URL=database_url_for_subprocess(),
            MEDIA_ROOT=str(settings.MEDIA_ROOT),
            MODELS_STORE_ROOT=str(settings.MODELS_STORE_ROOT),
            MASKLOOP_PRETRAINED_DOWNLOAD="0", TORCH_HOME=str(tmp_path / "torch-home"),
            PYTHONUNBUFFERED="1",
            # One thread: tiny models gain nothing from two, and two spin badly on a busy machine.
            OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
        )
        log_path = tmp_path / f"worker-{name}-{len(processes)}.log"
        log = open(log_path, "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--concurrency", "1",
             "-Q", queues, "--loglevel", "INFO", "--without-heartbeat", "--without-gossip",
             "--without-mingle", "-n", f"{name}-{os.getpid()}@%h"],
            cwd=Path(__file__).resolve().parent.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        process.log_path = log_path
        process.log_file = log
        processes.append(process)
        return process

    yield start
    for process in processes:
        stop_process(process)
        process.log_file.close()


def stop_process(process) -> None:
    """TERM a process this test started, then KILL it if it is still there after 20 s."""
    import subprocess

    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def celery_worker_process(start_worker):
    return start_worker("test")


def wait_for(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition", log_path=None):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    tail = Path(log_path).read_text()[-3000:] if log_path and Path(log_path).exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n--- worker log ---\n{tail}")
