"""A gunicorn on a free loopback port over a fresh database, for the operations end-to-end tests.

SQLite (a new file) by default; with TEST_DATABASE_URL, that PostgreSQL database, emptied first.
Every wait is bounded and the server is always stopped, its whole process group.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from persistence.db import db
from web import create_app
from web.cli import init_db

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"
START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_database(database_url: str, workdir: Path) -> str:
    """A migrated, empty database: a new SQLite file, or the PostgreSQL test database emptied."""
    from tests.conftest import empty_all_tables

    url = f"sqlite:///{workdir / 'live.db'}" if database_url.startswith("sqlite") else database_url
    app = create_app({"DATABASE_URL": url, "SCHEDULER_ENABLED": False})
    with app.app_context():
        init_db()
        empty_all_tables()
        db.engine.dispose()
    return url


def http(base: str, method: str, path: str, body=None, headers: dict | None = None, timeout: float = 10):
    """(status, headers, bytes) of one request to the loopback server; (None, {}, b"") if it did not answer."""
    assert base.startswith("http://127.0.0.1:"), base
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={**({"Content-Type": "application/json"} if data else {}),
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, {}, b""


class Gunicorn:
    def __init__(self, database_url: str, workdir: Path, workers: int, env: dict | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "gunicorn.log"
        self.env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
        self.env.update({
            "DATABASE_URL": database_url, "SCHEDULER_ENABLED": "false", "BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers), "INSTANCE_PATH": str(workdir / "instance"), "LOG_FORMAT": "json",
            # gunicorn.conf.py makes its metrics directory under TMPDIR when none is given.
            "TMPDIR": str(workdir), **(env or {}),
        })
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(GUNICORN), "web:create_app()"], cwd=ROOT,
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline and self.proc.poll() is None:
            if http(self.base, "GET", "/healthz", timeout=2)[0] == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"gunicorn did not become healthy within {START_TIMEOUT_SECONDS} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        except ProcessLookupError:
            pass
        finally:
            try:  # workers left behind by a killed master are in the same group
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self._log.close()


@contextmanager
def running_gunicorn(database_url: str, workdir: Path, workers: int = 2, env: dict | None = None):
    server = Gunicorn(database_url, workdir, workers, env)
    try:
        server.start()
        yield server
    finally:
        server.stop()
