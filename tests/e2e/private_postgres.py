"""A throw-away PostgreSQL server of a test's own, which the test may stop and start at will.

The shared server on 5432 serves other suites at the same time and must never
be restarted; this one lives in a temporary directory on a free loopback port
and runs as the `postgres` OS user (we may be root, which PostgreSQL refuses).
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.e2e.helpers import free_port

COMMAND_TIMEOUT_SECONDS = 60


class PrivatePostgresUnavailable(Exception):
    """This machine cannot run a private PostgreSQL server (no binaries, no postgres user, ...)."""


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not candidates:
        raise PrivatePostgresUnavailable("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return Path(candidates[-1]).parent


class PrivatePostgres:
    """initdb into a temporary directory, pg_ctl start/stop on a free port; removed on close."""

    def __init__(self):
        self.bin = _bin_dir()
        try:
            self.owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PrivatePostgresUnavailable("there is no `postgres` OS user to run the server as") from None
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise PrivatePostgresUnavailable("running as root and `runuser` is not installed")
            self._as_owner = [runuser, "-u", "postgres", "--"]
        elif os.geteuid() != self.owner.pw_uid:
            raise PrivatePostgresUnavailable("must run as root or as the `postgres` user")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="e2e-pg-"))
        os.chown(self.dir, self.owner.pw_uid, self.owner.pw_gid)
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as_owner, *args], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_SECONDS, cwd=self.dir)
        if done.returncode != 0:
            raise PrivatePostgresUnavailable(f"{' '.join(args[:2])} failed: {done.stdout[-500:]} {done.stderr[-500:]}")

    def init(self) -> "PrivatePostgres":
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c max_connections=60"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
                  "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30", "-m", mode, "stop")

    def close(self) -> None:
        """Stop the server if it runs, and remove its directory."""
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except (PrivatePostgresUnavailable, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
