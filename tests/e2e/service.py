"""A live service for end-to-end tests: a fresh PostgreSQL database and gunicorn on loopback."""

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from tests.e2e.helpers import ADMIN_PASSWORD, GATEWAY_SECRET, WEBHOOK_SECRET, Api, Http, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 15
WORKERS = 3
APP = "web:create_app()"


def run_flask(database_url: str, *args: str) -> str:
    """Run `flask --app web ARGS...` against `database_url`; return its output, fail loudly if it fails."""
    env = {**os.environ, "DATABASE_URL": database_url, "SCHEDULER_ENABLED": "false"}
    done = subprocess.run([str(BIN / "flask"), "--app", "web", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class PostgresServer:
    """A PostgreSQL server reached by an admin URL; makes and drops throw-away databases on it."""

    def __init__(self, url: URL):
        self.url = url
        self.admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool,
                                   connect_args={"connect_timeout": 5})

    def reachable(self) -> str | None:
        """None if the server answers, else why not."""
        try:
            with self.admin.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure to connect means: skip, and say why
            return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return None

    @contextmanager
    def fresh_database(self):
        """A new, uniquely named, migrated database; dropped afterwards whatever happened."""
        name = f"e2e_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = self.url.set(database=name).render_as_string(hide_password=False)
        engine = create_engine(url, poolclass=NullPool)
        try:
            run_flask(url, "init-db")
            yield url, engine
        finally:
            engine.dispose()
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def dispose(self) -> None:
        self.admin.dispose()


class GunicornServer:
    """`gunicorn 'web:create_app()'` (or another app) with WORKERS sync workers on a free loopback port."""

    def __init__(self, database_url: str, log_path: Path, workers: int = WORKERS, env: dict | None = None,
                 app: str = APP):
        self.app = app
        self.port = free_port()
        self.log_path = log_path
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = Http(self.base)
        self._env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "SCHEDULER_ENABLED": "false",
            "BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            "GATEWAY_SECRET": GATEWAY_SECRET,
            "GATEWAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "INSTANCE_PATH": str(log_path.parent / "instance"),
            "LOG_FORMAT": "json",
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> "GunicornServer":
        self._log = open(self.log_path, "ab")
        # Its own process group, so stopping it reaches the workers too.
        self.proc = subprocess.Popen([str(BIN / "gunicorn"), self.app], cwd=ROOT, env=self._env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.http.get("/api/services/", timeout=2).status == 200:
                return self
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"gunicorn did not answer within {START_TIMEOUT_SECONDS} s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    @staticmethod
    def tcp_connections(pid: int) -> set[tuple[int, int]]:
        """(local port, remote port) of each of `pid`'s TCP sockets, read from /proc."""
        try:
            inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")
                      if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")}
        except OSError:  # it just exited
            return set()
        connections = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if inode in inodes:
                    connections.add((int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)))
        return connections

    def database_client_ports(self, pid: int, database_port: int) -> set[int]:
        """Local ports of `pid`'s TCP connections to the database (to match against pg_stat_activity)."""
        return {local for local, remote in self.tcp_connections(pid) if remote == database_port}

    def client_ports(self, pid: int) -> set[int]:
        """The ports of the clients whose connections worker `pid` has accepted and still holds."""
        return {remote for local, remote in self.tcp_connections(pid) if local == self.port and remote != 0}

    def wait_for_workers(self, count: int, timeout: float = START_TIMEOUT_SECONDS) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if len(pids) >= count:
                return pids
            time.sleep(0.1)
        raise AssertionError(f"gunicorn has {self.worker_pids()} workers, wanted {count}:\n{self.log_tail()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def unhandled_errors(self) -> list[str]:
        """Log lines of requests that ended in the generic 500 handler."""
        return [line for line in self.log_text().splitlines() if "request.unhandled_error" in line]

    def stop(self) -> None:
        """SIGTERM to the whole group, then SIGKILL if it lingers."""
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
            # Workers orphaned by a killed master are in the same group.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self._log.close()


def make_admin(database_url: str) -> str:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    run_flask(database_url, "create-user", email, "--password", ADMIN_PASSWORD, "--admin")
    return email


class Live:
    """One running service: its HTTP API, its database engine, its server process."""

    def __init__(self, server: GunicornServer, engine, database_url: str):
        self.server = server
        self.engine = engine
        self.database_url = database_url
        self.http = server.http
        self.api = Api(server.http, make_admin(database_url))


@contextmanager
def live_service(postgres: PostgresServer, workdir: Path, workers: int = WORKERS, env: dict | None = None,
                 app: str = APP):
    """A fresh database and a gunicorn on it; the server is always stopped, the database always dropped."""
    with postgres.fresh_database() as (url, engine):
        server = GunicornServer(url, workdir / f"gunicorn-{uuid.uuid4().hex[:6]}.log", workers, env, app)
        try:
            server.start()
            yield Live(server, engine, url)
        finally:
            server.stop()
