"""Run the integration tier: the worker and integration tests against PostgreSQL and Redis on 127.0.0.1.

Skips, with a message saying what is missing, where either server is absent.
Each run gets its own database name and Redis database number so that runs
sharing a machine do not consume each other's tasks.
"""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys

PG = os.environ.get("MASKLOOP_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("MASKLOOP_TEST_REDIS", "redis://127.0.0.1:6379")


def reachable(url: str) -> str | None:
    """None if the server answers, else why not."""
    host_port = url.split("@")[-1].split("://")[-1].split("/")[0]
    host, port = host_port.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        return f"{url} not reachable ({exc})"
    return None


def main() -> int:
    missing = [reason for reason in (reachable(PG), reachable(REDIS)) if reason]
    if missing:
        print("SKIPPED integration tier (PostgreSQL + Redis): " + "; ".join(missing))
        return 0
    env = dict(os.environ)
    env["DATABASE_URL"] = f"{PG}/maskloop_{os.getpid()}"
    env["CELERY_BROKER_URL"] = f"{REDIS}/{random.randint(1, 15)}"
    env["MASKLOOP_INTEGRATION"] = "1"
    args = [sys.executable, "-m", "pytest", "-m", "worker or integration", *sys.argv[1:]]
    print(f"integration tier: DATABASE_URL={env['DATABASE_URL']} CELERY_BROKER_URL={env['CELERY_BROKER_URL']}")
    return subprocess.call(args, env=env)


if __name__ == "__main__":
    sys.exit(main())
