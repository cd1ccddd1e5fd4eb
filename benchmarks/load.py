"""Load: 50 annotators labeling at once, on the production stack and on the embedded default.

Each simulated annotator is a thread with its own keep-alive connection and
cookies, doing what the labeling page does: log in (the form, CSRF, session
cookie), then for each of its queries ask for the next one, fetch the image
and the suggestion, save a 480×360 index-mask PNG once or twice, and submit,
pausing about ``--think`` seconds after each answer. Labeling starts once all
have logged in (50 password hashes at once are measured apart), each within
two pauses of that moment. Every request goes to 127.0.0.1 only; a run is
bounded by a fixed number of queries per annotator and a time limit.

Stacks (the script sets each up, starts it, runs, stops it and cleans up):

production  the README's recipe: gunicorn -w 4 --threads 4, DEBUG=0, PostgreSQL
            (a scratch database on 127.0.0.1:5432, dropped at the end) with
            DB_CONN_MAX_AGE=60, Redis on 127.0.0.1:6379 as broker and cache
            (log-in counts); HTTPS settings left out (plain HTTP on 127.0.0.1)
embedded    `make run`'s web server: gunicorn 2 processes × 4 threads on SQLite
            in WAL mode, file cache, filesystem broker (manage.py runstack)

Client-side times are measured around each request; server-side times come
from gunicorn's access log (``%(L)s``: from the request read to the last
byte written). Rounds never close (there are more queries than submits), so
no background job is sent and the times are the web tier's alone.

    python benchmarks/load.py                          # both stacks, 3 runs each; writes docs/BENCHMARKS.md
    python benchmarks/load.py --stack production --runs 1 --no-write
    python benchmarks/load.py --think 0                # no pause between an annotator's requests (stress)
    python benchmarks/load.py --stack production --conn-max-age 0   # a new database connection per request
    python benchmarks/load.py --profile-save           # cProfile of one save on the production settings
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402

HOST = "127.0.0.1"
POSTGRES = os.environ.get("MASKLOOP_LOAD_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("MASKLOOP_LOAD_REDIS", "redis://127.0.0.1:6379/0")
PASSWORD = "load-benchmark-password"
WIDTH, HEIGHT = 480, 360
ACCESS_FORMAT = "%(m)s %(U)s %(s)s %(L)s"
# (method, path pattern) → the endpoint's name in the table, in the loop's order.
ENDPOINTS = [
    ("GET", re.compile(r"^/login/$"), "login page"),
    ("POST", re.compile(r"^/login/$"), "log in"),
    ("POST", re.compile(r"^/api/labeling/projects/\d+/next/$"), "next"),
    ("GET", re.compile(r"^/api/labeling/queries/\d+/image/$"), "image"),
    ("GET", re.compile(r"^/api/labeling/queries/\d+/suggestion/mask/$"), "suggestion"),
    ("POST", re.compile(r"^/api/labeling/queries/\d+/annotations/$"), "save"),
    ("POST", re.compile(r"^/api/labeling/queries/\d+/submit/$"), "submit"),
]
GOAL_ENDPOINTS = ("next", "save", "submit")
EXPECTED = {"login page": 200, "log in": 302, "next": 200, "image": 200, "suggestion": 200, "save": 201,
            "submit": 201}


def endpoint_of(method: str, path: str) -> str | None:
    path = path.split("?", 1)[0]
    return next((name for m, pattern, name in ENDPOINTS if m == method and pattern.match(path)), None)


# --- the data: one project, enough queries for every run -----------------------------------------------------


def scene(rng) -> np.ndarray:
    """A 480×360 street-like frame (sky, buildings, road, a car): JPEG-sized like a photo, cheap to make."""
    import numpy as np

    y = np.linspace(0, 1, HEIGHT)[:, None, None]
    pixels = np.concatenate([np.broadcast_to(130 + 100 * (1 - y), (HEIGHT, WIDTH, 1))] * 3, axis=2).copy()
    horizon = int(HEIGHT * rng.uniform(0.4, 0.55))
    pixels[horizon:] = [90, 90, 95]
    for _ in range(6):
        left, width = rng.integers(0, WIDTH - 60), rng.integers(40, 120)
        pixels[int(horizon * rng.uniform(0.2, 0.6)):horizon, left:left + width] = rng.integers(60, 200, 3)
    car = rng.integers(20, WIDTH - 140)
    pixels[horizon + 40:horizon + 90, car:car + 120] = rng.integers(0, 255, 3)
    pixels += rng.normal(0, 6, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def label_mask(rng) -> np.ndarray:
    """What an annotator paints: sky / road / car regions with a little void, as the index PNG the page posts."""
    import numpy as np

    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    horizon = int(HEIGHT * rng.uniform(0.4, 0.55))
    mask[horizon:] = 1
    car = rng.integers(20, WIDTH - 140)
    mask[horizon + 40:horizon + 90, car:car + 120] = 2
    mask[:, rng.integers(0, WIDTH - 10):][:8] = 255
    return mask


def seed(annotators: int, queries: int) -> dict:
    """Create the project, its annotators and a labeling round of ``queries`` whole-image queries with suggestions."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from annotator.models import Membership, Round
    from annotator.services.projects import ClassSpec, project_create
    from tests.factories import make_image, make_model_version, make_query, make_round, make_suggestion

    users = get_user_model().objects
    lead = users.create_user("load-lead", password=PASSWORD)
    project = project_create(name="Load", created_by=lead, classes=[
        ClassSpec(0, "sky", "#4682b4", "1"), ClassSpec(1, "road", "#804080", "2"), ClassSpec(2, "car", "#400080", "3")])
    password = make_password(PASSWORD)  # hashed once: every annotator shares it
    people = users.bulk_create([users.model(username=f"annotator{i:02d}", password=password)
                                for i in range(annotators)])
    Membership.objects.bulk_create([Membership(project=project, user=user, role=Membership.Role.ANNOTATOR)
                                    for user in people])
    model = make_model_version(project)
    round_ = make_round(project, number=0, state=Round.State.LABELING, model_version=model)
    rng = np.random.default_rng(0)
    for i in range(queries):
        image = make_image(project, name=f"frame_{i:04d}.jpg", size=(WIDTH, HEIGHT), pixels=scene(rng))
        query = make_query(round_, image)
        suggestion = label_mask(rng)
        suggestion[rng.random(suggestion.shape) < 0.3] = 255
        make_suggestion(query, suggestion, rng.random((HEIGHT, WIDTH)), model_version=model)
    return {"project": project.pk, "usernames": [user.username for user in people]}


# --- one simulated annotator ---------------------------------------------------------------------------------


@dataclass
class Sample:
    endpoint: str
    seconds: float
    ok: bool
    detail: str = ""


class Browser:
    """One annotator's browser: a keep-alive connection, its cookies, and the CSRF header on every POST.

    Like a browser, it sends a request again on a new connection when a kept
    one turns out closed before any answer (gunicorn closes idle ones after
    2 s); ``retries`` counts those.
    """

    IDLE_LIMIT = 1.5
    STALE = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)

    def __init__(self, port: int):
        self.port, self.cookies, self.connection, self.last_used, self.retries = port, {}, None, 0.0, 0

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str | None = None) -> tuple[int, bytes, float]:
        reused = self.connection is not None and time.monotonic() - self.last_used <= self.IDLE_LIMIT
        if not reused:
            if self.connection is not None:
                self.connection.close()
            self.connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
        try:
            return self._send(method, path, body, content_type)
        except self.STALE:
            if not reused:
                raise
            self.retries += 1
            self.connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
            return self._send(method, path, body, content_type)

    def _send(self, method: str, path: str, body: bytes | None,
              content_type: str | None) -> tuple[int, bytes, float]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if method == "POST":
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
            headers["Accept"] = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        started = time.perf_counter()
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = None
            raise
        finally:
            self.last_used = time.monotonic()
        elapsed = time.perf_counter() - started
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, data, elapsed


@dataclass
class Plan:
    project: int
    queries: int
    think: float
    deadline: float
    logged_in: threading.Barrier  # labeling starts when everyone has logged in: the hashing is measured apart
    masks: list[bytes] = field(default_factory=list)
    retries: list[int] = field(default_factory=list)


def annotate(port: int, username: str, plan: Plan, samples: list[Sample], seed_: int) -> None:
    rng = random.Random(seed_)
    browser = Browser(port)

    def call(endpoint: str, method: str, path: str, body: bytes | None = None,
             content_type: str | None = None) -> bytes | None:
        try:
            status, data, seconds = browser.request(method, path, body, content_type)
        except (OSError, http.client.HTTPException) as error:
            samples.append(Sample(endpoint, 0.0, False, f"{type(error).__name__}: {error}"))
            return None
        ok = status == EXPECTED[endpoint]
        samples.append(Sample(endpoint, seconds, ok, "" if ok else f"{status} {data[:200]!r}"))
        if plan.think:
            time.sleep(rng.uniform(0.5, 1.5) * plan.think)
        return data if ok else None

    logged_in = False
    try:
        if call("login page", "GET", "/login/") is not None:
            form = urlencode({"username": username, "password": PASSWORD,
                              "csrfmiddlewaretoken": browser.cookies.get("csrftoken", "")}).encode()
            logged_in = call("log in", "POST", "/login/", form, "application/x-www-form-urlencoded") is not None
    finally:
        try:
            plan.logged_in.wait(timeout=max(1.0, plan.deadline - time.monotonic()))
        except threading.BrokenBarrierError:
            pass
    if logged_in:
        time.sleep(rng.uniform(0, 2 * plan.think))  # people who just logged in do not all click at the same instant
        label(call, plan, rng, samples)
    plan.retries.append(browser.retries)


def label(call, plan: Plan, rng: random.Random, samples: list[Sample]) -> None:
    """The labeling loop: next, image, suggestion, one or two saves, submit; ``plan.queries`` times."""
    for _ in range(plan.queries):
        if time.monotonic() > plan.deadline:
            return
        answer = call("next", "POST", f"/api/labeling/projects/{plan.project}/next/", b"{}", "application/json")
        detail = json.loads(answer)["query"] if answer else None
        if detail is None:
            if answer:
                samples.append(Sample("next", 0.0, False, "no query left"))
            return
        call("image", "GET", detail["image"]["url"])
        if detail["suggestion"]:
            call("suggestion", "GET", detail["suggestion"]["mask_url"])
        version, first = detail["base_version"], rng.randrange(len(plan.masks))
        for step in range(rng.choice((1, 2))):  # each save has changes: the page saves only then
            saved = call("save", "POST", f"{detail['urls']['save']}?base_version={version}&time_spent=20",
                         plan.masks[(first + step) % len(plan.masks)], "image/png")
            if saved is None:
                break
            version = json.loads(saved)["annotation"]["version"]
        call("submit", "POST", f"{detail['urls']['submit']}?base_version={version}&time_spent=5",
             rng.choice(plan.masks), "image/png")


# --- stacks ----------------------------------------------------------------------------------------------------


def clean_environment() -> dict[str, str]:
    drop = ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY",
            "DJANGO_SETTINGS_MODULE", "MEDIA_ROOT", "MODELS_STORE_ROOT", "STATIC_ROOT", "DB_CONN_MAX_AGE")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("MASKLOOP_")}
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Stack:
    """A web server this script starts and stops, with the environment it was set up in."""

    def __init__(self, name: str, workdir: Path):
        self.name, self.workdir, self.port = name, workdir, free_port()
        self.access_log = workdir / "access.log"
        self.env = {**clean_environment(), "MASKLOOP_VAR_DIR": str(workdir / "var"),
                    "MEDIA_ROOT": str(workdir / "media"), "MODELS_STORE_ROOT": str(workdir / "models")}
        self.process = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def manage(self, *args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                       stdout=subprocess.DEVNULL)

    def prepare(self, annotators: int, queries: int) -> dict:
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("collectstatic", "--noinput", "-v", "0")
        out = subprocess.run([sys.executable, __file__, "--seed", str(annotators), str(queries)], cwd=ROOT,
                             env=self.env, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    def start(self) -> None:
        self.access_log.write_text("")
        self.process = subprocess.Popen(self.command(), cwd=ROOT, env=self.env,
                                        stdout=open(self.workdir / "web.log", "a"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if Browser(self.port).request("GET", "/login/")[0] == 200:
                    break
            except OSError:
                time.sleep(0.3)
        else:
            raise SystemExit(f"{self.name}: the web server did not answer; see {self.workdir / 'web.log'}")
        self.warm_up()
        self.access_log.write_text("")  # the probe and the warm-up are not part of the run

    def warm_up(self) -> None:
        """Every process imports its views on its first request (seconds): let each do that before the run."""
        def hit() -> None:
            browser = Browser(self.port)
            for path in ("/login/", "/api/", "/api/labeling/queries/0/"):
                browser.request("GET", path)

        threads = [threading.Thread(target=hit) for _ in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def cleanup(self) -> None:
        pass


class ProductionStack(Stack):
    def __init__(self, workdir: Path, *, conn_max_age: int = 60):
        super().__init__("production", workdir)
        self.database, self.conn_max_age = f"maskloop_load_{os.getpid()}", conn_max_age
        self.env.update(DATABASE_URL=f"{POSTGRES}/{self.database}", CELERY_BROKER_URL=REDIS, CACHE_URL=REDIS,
                        DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS=HOST,
                        STATIC_ROOT=str(workdir / "static"), DB_CONN_MAX_AGE=str(conn_max_age))

    def describe(self) -> str:
        return (f"gunicorn -w 4 --threads 4, DEBUG=0, PostgreSQL 127.0.0.1 with DB_CONN_MAX_AGE={self.conn_max_age}, "
                "Redis broker + cache")

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
            connection.execute(sql)

    def prepare(self, annotators: int, queries: int) -> dict:
        self._admin(f'CREATE DATABASE "{self.database}"')
        return super().prepare(annotators, queries)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"{HOST}:{self.port}", "-w", "4",
                "--threads", "4", "--access-logfile", str(self.access_log), "--access-logformat", ACCESS_FORMAT,
                "--no-control-socket"]

    def cleanup(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


class EmbeddedStack(Stack):
    def __init__(self, workdir: Path):
        super().__init__("embedded", workdir)

    def describe(self) -> str:
        return "manage.py runstack's gunicorn (2 processes × 4 threads), SQLite WAL, file cache"

    def command(self) -> list[str]:
        from annotator.management.commands.runstack import stack_commands

        (self.workdir / "var" / "logs").mkdir(parents=True, exist_ok=True)
        command = stack_commands(host=HOST, port=str(self.port), web_workers=2, web_threads=4,
                                 var_dir=self.workdir / "var", with_workers=False)["web"]
        log = command.index("--access-logfile") + 1
        command[log] = str(self.access_log)
        return command + ["--access-logformat", ACCESS_FORMAT]


# --- a run and its figures -------------------------------------------------------------------------------------


def server_times(access_log: Path) -> dict[str, list[float]]:
    times = defaultdict(list)
    for line in access_log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and (name := endpoint_of(parts[0], parts[1])):
            times[name].append(float(parts[3]))
    return times


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def machine_cpu_seconds() -> float:
    """CPU time every core of the machine spent busy (user, nice, system, irq, softirq, steal), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = fields[0] + fields[1] + fields[2] + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def run_once(stack: Stack, seeded: dict, args, masks: list[bytes], offset: int) -> dict:
    names = seeded["usernames"][:args.annotators]
    stack.start()
    labeling_from = []  # (wall clock, server CPU, client CPU, machine CPU) when the last annotator has logged in

    def mark() -> None:
        labeling_from.append((time.perf_counter(), cpu_seconds(stack.process.pid), time.process_time(),
                              machine_cpu_seconds()))

    plan = Plan(project=seeded["project"], queries=args.queries, think=args.think,
                deadline=time.monotonic() + args.time_limit, masks=masks,
                logged_in=threading.Barrier(len(names), action=mark))
    samples: list[Sample] = []
    threads = [threading.Thread(target=annotate, args=(stack.port, name, plan, samples, offset + i), daemon=True)
               for i, name in enumerate(names)]
    started = time.perf_counter()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.time_limit + 120)
        ended, server_cpu, client_cpu = time.perf_counter(), cpu_seconds(stack.process.pid), time.process_time()
        machine_cpu = machine_cpu_seconds()
    finally:
        stack.stop()
    server = server_times(stack.access_log)
    client = defaultdict(list)
    errors = defaultdict(list)
    for sample in samples:
        if sample.ok:
            client[sample.endpoint].append(sample.seconds)
        else:
            errors[sample.endpoint].append(sample.detail)
    since, server_cpu_then, client_cpu_then, machine_cpu_then = (
        labeling_from[0] if labeling_from else (started, 0.0, 0.0, 0.0))
    labeling = ended - since
    labeling_requests = sum(len(client[name]) for name in ("next", "image", "suggestion", "save", "submit"))
    return {"wall": ended - started, "labeling_seconds": labeling,
            "requests": len(samples), "client": client, "server": server, "errors": errors,
            "submitted": len(client["submit"]), "retries": sum(plan.retries),
            "labeling_rate": labeling_requests / labeling,
            # Cores busy while labeling: the web server (not PostgreSQL), and this script's 50 threads.
            "server_cores": (server_cpu - server_cpu_then) / labeling,
            "client_cores": (client_cpu - client_cpu_then) / labeling,
            # Everything else: PostgreSQL / Redis for the production stack, and whatever else runs on the machine.
            "other_cores": (machine_cpu - machine_cpu_then - server_cpu + server_cpu_then - client_cpu
                            + client_cpu_then) / labeling,
            "server_cpu_ms": 1000 * (server_cpu - server_cpu_then) / max(1, labeling_requests)}


def summarize(runs: list[dict]) -> dict:
    """Per endpoint: requests and errors summed over runs, percentiles as the median of the runs' percentiles."""
    rows = {}
    for _, _, name in ENDPOINTS:
        rows[name] = {
            "requests": sum(len(r["client"][name]) + len(r["errors"][name]) for r in runs),
            "errors": sum(len(r["errors"][name]) for r in runs),
            **{f"{side}_{q}": statistics.median(quantile(r[side][name], q / 100) for r in runs) * 1000
               for side in ("client", "server") for q in (50, 95, 99)},
        }
    return rows


def table(rows: dict) -> str:
    headers = ["endpoint", "requests", "errors", "client p50", "p95", "p99", "server p50", "p95", "p99"]
    return report.markdown_table(headers, [
        [name, row["requests"], row["errors"], *(f"{row[f'{side}_{q}']:.0f}" for side in ("client", "server")
                                                 for q in (50, 95, 99))]
        for name, row in rows.items()])


def goal_line(rows: dict) -> str:
    p95 = [rows[name]["server_95"] for name in GOAL_ENDPOINTS]
    verdict = "met" if max(p95) <= 100 else "not met"
    figures = " / ".join(f"{value:.0f}" for value in p95)
    return f"server-side p95 of next / save / submit: {figures} ms (goal ≤ 100 ms: {verdict})"


def profile_save(saves: int = 20) -> None:
    """cProfile saves of a 480×360 mask through the whole Django stack (test client, one thread, no contention)."""
    import cProfile
    import pstats

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.test import Client
    from django.test.utils import setup_test_environment

    from annotator.models import Membership, Query

    setup_test_environment()
    query = Query.objects.filter(status=Query.Status.PENDING, assignee=None).first()
    user = Membership.objects.filter(project=query.round.project, role="annotator").first().user
    client = Client()
    client.force_login(user)
    pngs = mask_pngs(2)  # alternated: each save has changes
    url = f"/api/labeling/queries/{query.pk}/annotations/"

    def save(number: int, version: int) -> int:
        response = client.post(f"{url}?base_version={version}", data=pngs[number % 2], content_type="image/png")
        assert response.status_code == 201, response.content
        return response.json()["annotation"]["version"]

    version = save(0, query.image.annotations.count())  # warm: imports, the first connection
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for number in range(1, saves + 1):
        version = save(number, version)
    profiler.disable()
    print(f"{saves} saves: {1000 * (time.perf_counter() - started) / saves:.1f} ms each under the profiler")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(r"annotator/|PIL/Image|psycopg/cursor|storage|authentication", 25)


def mask_pngs(count: int) -> list[bytes]:
    import numpy as np

    from annotator.imaging import encode_png

    rng = np.random.default_rng(1)
    return [encode_png(label_mask(rng)) for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", choices=("production", "embedded", "both"), default="both")
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--queries", type=int, default=2, help="queries each annotator labels per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per stack; the table shows the median")
    parser.add_argument("--think", type=float, default=1.0,
                        help="mean seconds an annotator pauses after each answer (0: back to back)")
    parser.add_argument("--time-limit", type=float, default=90.0, help="seconds after which no query is started")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) and print its path")
    parser.add_argument("--profile-save", action="store_true", help="also cProfile one save (production stack)")
    parser.add_argument("--conn-max-age", type=int, default=60,
                        help="production: DB_CONN_MAX_AGE (the README's 60; 0: a new connection per request)")
    parser.add_argument("--seed", nargs=2, type=int, metavar=("ANNOTATORS", "QUERIES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seed:
        print(json.dumps(seed(*args.seed)))
        return 0

    names = ("production", "embedded") if args.stack == "both" else (args.stack,)
    masks = mask_pngs(4)
    workdir = Path(tempfile.mkdtemp(prefix="maskloop-load-"))
    results = {}
    try:
        for name in names:
            stack = (ProductionStack(workdir / name, conn_max_age=args.conn_max_age) if name == "production"
                     else EmbeddedStack(workdir / name))
            stack.workdir.mkdir(parents=True)
            try:
                seeded = stack.prepare(args.annotators, args.annotators * args.queries * args.runs + args.annotators)
                runs = []
                for number in range(args.runs):
                    run = run_once(stack, seeded, args, masks, offset=number * 1000)
                    runs.append(run)
                    print(f"{name} run {number + 1}: {run['requests']} requests in {run['wall']:.1f} s "
                          f"(labeling {run['labeling_seconds']:.1f} s, {run['labeling_rate']:.0f} requests/s), "
                          f"{run['submitted']} submits, {sum(map(len, run['errors'].values()))} errors, "
                          f"{run['retries']} resent on a new connection; while labeling the web server used "
                          f"{run['server_cores']:.2f} cores ({run['server_cpu_ms']:.0f} ms CPU a request), "
                          f"this client {run['client_cores']:.2f}, everything else {run['other_cores']:.2f}",
                          flush=True)
                    for endpoint, details in run["errors"].items():
                        print(f"  {endpoint}: {details[:3]}")
                if args.profile_save and name == "production":
                    subprocess.run([sys.executable, "-c", "import benchmarks.load as l; l.profile_save()"],
                                   cwd=ROOT, env=stack.env, check=True)
            finally:
                stack.stop()
                stack.cleanup()
            results[name] = (stack, runs)
            rows = summarize(runs)
            print(f"\n{name}: {stack.describe()}\n{table(rows)}\n{goal_line(rows)}\n", flush=True)
    finally:
        if args.keep:
            print(f"work folder: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if not args.no_write and len(results) == 2:
        report.write_section("load", markdown(results, args))
        print(f"wrote the 'load' section of {report.BENCHMARKS_MD}")
    return 0


def markdown(results: dict, args) -> str:
    lines = [
        "## Load: 50 annotators labeling at once",
        "",
        f"Machine: {report.machine_description()}. Command: `{report.command_line()}`.",
        "",
        f"{args.annotators} simulated annotators (threads on the same machine as the server), each logging in and "
        f"then, for {args.queries} queries: next, image, suggestion, one or two saves of a {WIDTH}×{HEIGHT} "
        f"index-mask PNG, submit; a pause of {args.think:g} s on average after each answer. Times in ms; the "
        f"median over {args.runs} runs of each run's percentile; requests and errors summed over the runs. "
        "Server-side: gunicorn's request time (`%(L)s`). Labeling starts when all have logged in.",
    ]
    for name, (stack, runs) in results.items():
        rows = summarize(runs)
        walls = ", ".join(f"{run['wall']:.0f}" for run in runs)
        usage = {key: statistics.median(run[key] for run in runs)
                 for key in ("labeling_rate", "server_cores", "server_cpu_ms", "client_cores", "other_cores")}
        lines += ["", f"**{name}**: {stack.describe()} (runs of {walls} s)", "", table(rows), "",
                  goal_line(rows) + ".",
                  f"While labeling ({usage['labeling_rate']:.0f} requests/s) the machine's 2 cores were busy with: "
                  f"the web server {usage['server_cores']:.2f} ({usage['server_cpu_ms']:.0f} ms CPU a request), "
                  f"the simulated annotators {usage['client_cores']:.2f}, everything else {usage['other_cores']:.2f} "
                  "(the database and Redis, and other work on the machine)."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
