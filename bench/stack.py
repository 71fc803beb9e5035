"""What every benchmark stands on: a fresh database, one checkout served by gunicorn, wrk driving it.

A checkout is any folder holding the service's code (the working tree, or a commit exported by
bench/checkout.py). It is served and migrated with its own code, through the one interpreter of
this virtualenv, so that two checkouts differ only in what they contain.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LUA = ROOT / "bench" / "lua" / "requests.lua"
# The baseline route's module sits in a folder of its own, so it can go on any checkout's path.
SERVED = ROOT / "bench" / "served"
SECRET = "bench-gateway-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(tool: str, install: str) -> str:
    path = shutil.which(tool)
    if path is None:
        sys.exit(f"{tool} is not installed: {install}")
    return path


def checkout_env(checkout: Path, database_url: str) -> dict[str, str]:
    """The environment that makes `checkout`'s own code the one imported, on `database_url`."""
    env = {**os.environ, "DATABASE_URL": database_url, "SCHEDULER_ENABLED": "false", "GATEWAY_SECRET": SECRET,
           "PYTHONPATH": os.pathsep.join([str(checkout), str(SERVED)])}
    # Each server keeps its own metrics folder: gunicorn.conf.py empties the one it is given at start.
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


class Database:
    """A fresh database for one run, dropped afterwards."""

    def __init__(self, sqlite: bool, workdir: Path, name: str | None = None):
        self.name = name or f"bench_{os.getpid()}"
        if sqlite:
            self.url = f"sqlite:///{workdir / self.name}.db"
            self.admin = None
            return
        server = os.environ.get("BENCH_DATABASE_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        self.admin = create_engine(make_url(server).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}"'))
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = make_url(server).set(database=self.name).render_as_string(hide_password=False)

    def migrate(self, checkout: Path = ROOT) -> None:
        """Create the schema with the checkout's own migrations: schemas may differ between commits."""
        done = subprocess.run([str(BIN / "flask"), "--app", "web", "init-db"], cwd=checkout,
                              env=checkout_env(checkout, self.url), capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"init-db failed in {checkout}: {done.stdout[-2000:]} {done.stderr[-2000:]}")

    def drop(self) -> None:
        if self.admin is not None:
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self.admin.dispose()


class Server:
    """gunicorn serving a checkout's app plus the baseline route, on a free loopback port.

    The checkout's own gunicorn.conf.py is read (its logging belongs to its code); the settings
    that shape a measurement are given on the command line, so every checkout runs with the same.
    A peer (bench/peers/) is served the same way from its own folder: `app` names its WSGI app
    (which answers /bench/baseline too), `gunicorn` may come from the peer's own virtualenv, and
    `env` adds to the checkout's environment.
    """

    def __init__(self, url: str, workers: int, log_path: Path, checkout: Path = ROOT, *,
                 app: str = "bench_app:create_bench_app()", gunicorn: Path = BIN / "gunicorn",
                 env: dict[str, str] | None = None):
        self.port = free_port()
        command = [str(gunicorn), "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
                   "--worker-class", "sync", "--no-control-socket", app]
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(command, cwd=checkout, env={**checkout_env(checkout, url), **(env or {})},
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_until_answering(log_path)
        except BaseException:  # not started, Ctrl-C or SIGTERM: nobody else holds this server to stop it
            self.stop()
            raise

    def _wait_until_answering(self, log_path: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.base}/bench/baseline", timeout=1).read()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        self.log.flush()
        sys.exit(f"gunicorn did not start; its log ({log_path}) ends:\n{log_path.read_text()[-3000:]}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_peak_rss_mb(self) -> list[float]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        peaks = []
        for pid in children.read_text().split() if children.exists() else []:
            status = Path(f"/proc/{pid}/status").read_text()
            peaks.append(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024)
        return peaks

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def run_wrk(base: str, request_file: Path, connections: int, seconds: float, expected: int, token: str) -> dict:
    threads = min(connections, 2)
    command = [need("wrk", "apt-get install wrk"), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "--timeout", "10s", "-s", str(LUA), base, "--", str(request_file), str(threads), str(expected), token]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if "RESULT " not in done.stdout:
        sys.exit(f"wrk failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")
    result = json.loads(done.stdout.split("RESULT ", 1)[1].splitlines()[0])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = result["unexpected_status"] + result["socket_errors"]
    return result


def cpu_check_ms() -> float:
    """How long a fixed pure-Python loop takes here now, best of three: this machine's speed at the time.

    Virtual machines' speed drifts (seen here: the same loop 0.5 to 1.7 s); only numbers
    taken at a similar value compare. Ratios within one run always do.
    """
    def loop():
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        return time.perf_counter() - started

    return min(loop() for _ in range(3)) * 1000


def stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so a killed run still stops its servers and drops its databases."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
