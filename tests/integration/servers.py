"""Servers a fault test owns: a redis-server, a PostgreSQL cluster, gunicorn; and a small JSON client.

Each runs on a free port of 127.0.0.1 and belongs to the test alone, so it can
be killed and restarted without touching the system's PostgreSQL and Redis.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


class RedisServer:
    """``redis-server --port P --save ''``: no persistence, so a restart comes back empty like a lost broker."""

    def __init__(self, workdir: Path):
        self.port, self.workdir, self.process = free_port(), workdir, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for(lambda: _answers(self.port), timeout=20, what="redis-server")
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def llen(self, key: str, db: int = 0) -> int:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=db).llen(key)


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    """A throwaway cluster (initdb in a temp folder, trust auth) on its own port; run as ``postgres`` when root."""

    def __init__(self):
        self.bin, self.port = postgres_bin(), free_port()
        self.root = Path(tempfile.mkdtemp(prefix="maskloop-pg-"))
        self.data = self.root / "data"
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_owner, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> PostgresCluster:
        if self.as_owner:
            self.root.chmod(0o755)
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: sessions are cut, as when the server restarts for an upgrade or a failover."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def createdb(self, name: str) -> None:
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def gunicorn(env: dict[str, str], log: Path, *, threads: int = 4) -> tuple[subprocess.Popen, str]:
    """The production web server on a free port; its process and base URL, once /login/ answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--threads", str(threads), "--no-control-socket"],
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: process.poll() is not None or request("GET", f"{base}/login/")[0] == 200, timeout=60,
               what="gunicorn")
    assert process.poll() is None, log.read_text()[-3000:]
    return process, base


def request(method: str, url: str, *, token: str | None = None, json_body: dict | None = None,
            png: bytes | None = None) -> tuple[int, dict | bytes | None]:
    """One HTTP request; (status, parsed JSON or bytes); status 0 when nothing answered."""
    headers, data = {}, None
    if token:
        headers["Authorization"] = f"Token {token}"
    if json_body is not None:
        headers["Content-Type"], data = "application/json", json.dumps(json_body).encode()
    if png is not None:
        headers["Content-Type"], data = "image/png", png
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers),
                                    timeout=30) as response:
            status, body, kind = response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        status, body, kind = error.code, error.read(), error.headers.get("Content-Type", "")
    except OSError:
        return 0, None
    return status, json.loads(body) if "json" in kind and body else body
