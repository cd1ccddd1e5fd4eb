"""Scale of the database and web tier: lead pages, API lists and a round's pool read at 1,000 to 100,000 images.

A scratch PostgreSQL database (127.0.0.1:5432, dropped at the end) gets the
app's schema (``migrate``), a project with a lead and an annotator, and bulk
rows (``tests.factories.add_rows``, the rows the query-count tests use: pool
images, one validation image in 40, rounds with queries, answers,
suggestions and jobs; no files, which none of these views read). The project
grows 1,000 → 10,000 → 100,000 pool images; at each size every view is asked
through Django's test client in this process (the app's URLs, views,
templates and serializers with DEBUG=0 and persistent database connections; no network, no web server) once to
warm up and then ``--runs`` times: the median wall time, the SQL queries of
one request, the response size. ``round_pool`` is the database half of a
round's selection (the pool's images, labels so far and pixels asked for).

    python benchmarks/scale_db.py                       # 1k, 10k, 100k; writes docs/BENCHMARKS.md
    python benchmarks/scale_db.py --sizes 1000 10000 --runs 3 --no-write
    python benchmarks/scale_db.py --report-only         # re-render from benchmarks/results/scale_db.jsonl

Growth is judged by the ratio of the largest project's median to the
smallest's: a view that pages its rows costs about the same at every size.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402

RECORDS = Path(os.environ.get("MASKLOOP_SCALE_DB_RECORDS", ROOT / "benchmarks" / "results" / "scale_db.jsonl"))
POSTGRES = os.environ.get("MASKLOOP_SCALE_DB_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
SECTION = "scale_db"
PAGE_SIZE = 50
# (label, URL name, takes the project's pk as an argument, query parameters); "last" asks for the last page.
VIEWS = [
    ("dashboard page", "project-dashboard", True, {}),
    ("image browser page", "project-browse", True, {}),
    ("image browser, labeled", "project-browse", True, {"status": "labeled"}),
    ("images page", "project-images", True, {}),
    ("API images, first page", "image-list", False, {"page_size": PAGE_SIZE}),
    ("API images, last page", "image-list", False, {"page_size": PAGE_SIZE, "page": "last"}),
    ("API queries", "query-list", False, {"page_size": PAGE_SIZE}),
    ("API annotations", "annotation-list", False, {"page_size": PAGE_SIZE}),
    ("API rounds", "round-list", False, {"page_size": PAGE_SIZE}),
    ("API jobs", "job-list", False, {"page_size": PAGE_SIZE}),
]
ROUND_POOL = "round_pool (a round's pool read)"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(sql)


def _setup_django(database: str, var_dir: Path) -> None:
    # Persistent connections, as the README's production recipe sets them (and so that a request's queries
    # can be counted: a connection closed at the end of a request forgets its query log).
    os.environ.update(DATABASE_URL=f"{POSTGRES}/{database}", MASKLOOP_VAR_DIR=str(var_dir), DEBUG="0",
                      DB_CONN_MAX_AGE="60",
                      ALLOWED_HOSTS="testserver", SECRET_KEY="scale-db-benchmark-" + "x" * 40,
                      DJANGO_SETTINGS_MODULE="config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _people_and_project():
    from django.contrib.auth import get_user_model

    from annotator.models import Membership
    from annotator.services.projects import ClassSpec, membership_set, project_create

    make = get_user_model().objects.create_user
    users = {"lead": make("lead", password="pw-lead-scale"), "annotator": make("annotator", password="pw-ann-scale")}
    project = project_create(name="Scale", classes=[ClassSpec(0, "background", "#000000", "1"),
                                                    ClassSpec(1, "object", "#ff0000", "2")],
                             created_by=users["lead"])
    membership_set(project=project, user=users["annotator"], role=Membership.Role.ANNOTATOR)
    return users, project


def _timed(call, runs: int) -> tuple[list[float], int, int]:
    """``call`` once to warm up, then ``runs`` times: wall times (ms), queries of one call, bytes of its answer."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        answer = call()
    queries = len(captured)  # now: each request clears the connection's query log as it starts
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    size = len(answer.content) if hasattr(answer, "content") else 0
    return times, queries, size


def _view_call(client, project, name: str, with_pk: bool, params: dict):
    from django.urls import reverse

    url = reverse(name, args=[project.pk]) if with_pk else reverse(name)
    query = dict(params)
    if not with_pk:
        query["project"] = project.pk
    if query.get("page") == "last":
        count = client.get(url, {**query, "page": 1}).json()["count"]
        query["page"] = max(1, -(-count // PAGE_SIZE))

    def call():
        response = client.get(url, query)
        if response.status_code != 200:
            raise RuntimeError(f"{url} {query}: HTTP {response.status_code}")
        return response

    return call


def measure(sizes: list[int], runs: int, started: str) -> list[dict]:
    from django.test import Client

    from annotator.models import Image
    from annotator.services.round_data import round_pool
    from tests.factories import add_rows

    users, project = _people_and_project()
    client = Client()
    client.force_login(users["lead"])
    meta = {"machine": report.machine_description(), "command": report.command_line(), "started": started}
    records, have = [], 0
    for size in sorted(sizes):
        start = time.perf_counter()
        add_rows(project, users, images=size - have, start=have, rounds=3 if not have else 1)
        have = size
        built = time.perf_counter() - start
        pool = project.images.filter(split=Image.Split.POOL).count()
        print(f"{size:>7} pool images ({pool} in the database, rows added in {built:.0f} s)", flush=True)
        checks = [(label, _view_call(client, project, name, with_pk, params)) for label, name, with_pk, params in VIEWS]
        checks.append((ROUND_POOL, lambda: round_pool(project)))
        for label, call in checks:
            times, queries, size_bytes = _timed(call, runs)
            record = {**meta, "pool": size, "view": label, "runs_ms": times, "median_ms": statistics.median(times),
                      "queries": queries, "bytes": size_bytes}
            records.append(record)
            print(f"  {label:<34} {record['median_ms']:8.1f} ms  {queries:3d} queries  {size_bytes:>9,} B",
                  flush=True)
    return records


def load_records(path: Path = RECORDS) -> list[dict]:
    return report.read_records(path)


def render(records: list[dict]) -> str:
    """The newest campaign: per view, median ms (queries) at each pool size and the largest / smallest ratio."""
    if not records:
        return "## Database and web tier at scale (`benchmarks/scale_db.py`)\n\nNo records yet."
    newest = max(r["started"] for r in records)
    mine = [r for r in records if r["started"] == newest]
    sizes = sorted({r["pool"] for r in mine})
    views = list(dict.fromkeys(r["view"] for r in mine))
    at = {(r["view"], r["pool"]): r for r in mine}
    rows, ratios = [], {}
    for view in views:
        cells = [f"{at[view, n]['median_ms']:.1f} ({at[view, n]['queries']})" if (view, n) in at else "–"
                 for n in sizes]
        first, last = at.get((view, sizes[0])), at.get((view, sizes[-1]))
        ratio = last["median_ms"] / first["median_ms"] if first and last and first["median_ms"] > 0 else None
        ratios[view] = ratio
        rows.append([view, *cells, f"{ratio:.1f}×" if ratio is not None else "–"])
    first = mine[0]
    lines = [
        "## Database and web tier at scale (`benchmarks/scale_db.py`)",
        "",
        f"Machine: {first['machine']}; PostgreSQL on 127.0.0.1. Command: `{first['command']}` ({newest[:16]}).",
        "",
        "A project grown to each pool size with bulk rows (a round adds 150 queries, half answered, with "
        "suggestions and jobs); each view asked through Django's test client in one process (DEBUG=0, "
        "DB_CONN_MAX_AGE=60, no web server), once to warm up, then the median of the timed runs. Cells: median ms (SQL queries of one "
        "request). *round_pool*: the database half of a round's selection (pool images, labels so far, pixels "
        "asked for), which grows with the pool by design.",
        "",
        report.markdown_table(["view", *[f"{n:,} images" for n in sizes],
                               f"{sizes[-1] // sizes[0]:,}× images"], rows),
    ]
    paged = {v: r for v, r in ratios.items() if v != ROUND_POOL and r is not None}
    if paged and len(sizes) > 1:
        worst = max(paged, key=paged.get)
        lines += ["", f"From {sizes[0]:,} to {sizes[-1]:,} pool images ({sizes[-1] // sizes[0]:,}×) the slowest-growing "
                      f"page or list is *{worst}*: {paged[worst]:.1f}× its time; query counts per request "
                      + ("stay the same." if all(at[v, sizes[0]]["queries"] == at[v, sizes[-1]]["queries"]
                                                 for v in paged if (v, sizes[0]) in at and (v, sizes[-1]) in at)
                         else "change for some views (see the table).")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if not args.report_only:
        database = f"maskloop_scaledb_{os.getpid()}"
        started = time.strftime("%Y-%m-%dT%H:%M:%S")
        _admin(f'CREATE DATABASE "{database}"')
        try:
            with tempfile.TemporaryDirectory() as var_dir:
                _setup_django(database, Path(var_dir))
                records = measure(args.sizes, args.runs, started)
            from django.db import connections

            connections.close_all()
        finally:
            _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        RECORDS.parent.mkdir(parents=True, exist_ok=True)
        with RECORDS.open("a") as stream:
            stream.writelines(json.dumps(r) + "\n" for r in records)
    markdown = render(load_records())
    print(markdown)
    if not args.no_write:
        report.write_section(SECTION, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
