"""`make bench`: seed a fresh database, serve the app with gunicorn, drive it with wrk, print one table.

    python -m bench.run                      # PostgreSQL (BENCH_DATABASE_SERVER or 127.0.0.1:5432)
    python -m bench.run --sqlite             # the embedded SQLite default
    python -m bench.run --smoke              # tiny numbers: checks the harness still works
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.pgbench_confirm import write_script
from bench.seed import seed

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LUA = ROOT / "bench" / "lua" / "requests.lua"
SECRET = "bench-gateway-secret"
SCENARIOS = [  # name, request file, expected status
    ("baseline", "baseline", 200),
    ("confirm", "confirm", 200),
    ("create payment", "create", 201),
    ("deletion_status", "deletion_status", 200),
    ("delete (409)", "delete", 409),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(tool: str, install: str) -> str:
    path = shutil.which(tool)
    if path is None:
        sys.exit(f"{tool} is not installed: {install}")
    return path


class Database:
    """A fresh database for one run, dropped afterwards."""

    def __init__(self, sqlite: bool, workdir: Path):
        if sqlite:
            self.url = f"sqlite:///{workdir / 'bench.db'}"
            self.admin = None
            return
        server = os.environ.get("BENCH_DATABASE_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        self.name = f"bench_{os.getpid()}"
        self.admin = create_engine(make_url(server).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}"'))
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = make_url(server).set(database=self.name).render_as_string(hide_password=False)

    @property
    def libpq_url(self) -> str:
        return self.url.replace("postgresql+psycopg://", "postgresql://")

    def drop(self) -> None:
        if self.admin is not None:
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self.admin.dispose()


class Server:
    """gunicorn serving the app plus a baseline route, on a free loopback port."""

    def __init__(self, url: str, workers: int, log_path: Path):
        self.port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "SCHEDULER_ENABLED": "false", "GATEWAY_SECRET": SECRET,
               "BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": str(workers)}
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([str(BIN / "gunicorn"), "bench.app:create_bench_app()"], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.base}/bench/baseline", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        sys.exit(f"gunicorn did not start; see {log_path}")

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
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
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


def run_pgbench(db: Database, seeded, workdir: Path, clients: int, seconds: int) -> dict | None:
    """pgbench running the SQL one confirm sends (recorded from a real one), each transaction another payment."""
    pgbench = shutil.which("pgbench")
    if pgbench is None or db.admin is None:
        return None
    engine = create_engine(db.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("CREATE SEQUENCE IF NOT EXISTS bench_seq"))
    engine.dispose()
    method, path, body = seeded.files["record"].read_text().splitlines()[0].split("\t")
    confirmation = json.loads(body)
    script = write_script(workdir / "pgbench_confirm.sql", db.url, seeded.token,
                          (path.split("/")[3], confirmation["provider_payment_id"], confirmation["signature"]), SECRET)
    out = subprocess.run([pgbench, "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds),
                          "-D", f"uid={seeded.user_id}", "-f", str(script), db.libpq_url],
                         capture_output=True, text=True, timeout=seconds + 60)
    match = re.search(r"tps = ([\d.]+)", out.stdout)
    processed = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    if match is None or processed is None:
        print(out.stdout[-2000:], out.stderr[-2000:], file=sys.stderr)
        return None
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    engine = create_engine(db.url)
    with engine.connect() as conn:  # each transaction must really have confirmed a payment
        confirmed = conn.scalar(text("SELECT count(*) FROM payments p JOIN bookings b USING (transaction_id) "
                                     "WHERE left(p.provider_order_id, 10) = 'order_pgb_' AND p.status = 'SUCCESS'"))
        started = conn.scalar(text("SELECT last_value FROM bench_seq"))
    engine.dispose()
    return {"tps": float(match.group(1)), "transactions": int(processed.group(1)), "started": started,
            "confirmed": confirmed, "failed": int(failed.group(1)) if failed else 0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sqlite", action="store_true", help="benchmark the SQLite default instead of PostgreSQL")
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--connections", default="1,8,32", help="comma-separated connection counts")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1)),
                        help="gunicorn sync workers (default as gunicorn.conf.py: one more than the cores)")
    parser.add_argument("--rate", type=int, default=1500, help="expected peak confirms/s, to size the seed")
    parser.add_argument("--smoke", action="store_true", help="tiny run that only checks the harness works")
    parser.add_argument("--only", help="comma-separated endpoints to measure (default: all), e.g. baseline,confirm")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.connections, args.rate, args.workers = 1, "2", 200, 2
    levels = [int(c) for c in args.connections.split(",")]
    need("wrk", "apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    db = Database(args.sqlite, workdir)
    server = None
    try:
        env = {**os.environ, "DATABASE_URL": db.url, "SCHEDULER_ENABLED": "false"}
        subprocess.run([str(BIN / "flask"), "--app", "web", "init-db"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        per_level = int(args.rate * args.seconds * 1.5) + 100
        pgbench_seconds = max(1, int(args.seconds))
        started = time.monotonic()
        seeded = seed(db.url, workdir, gateway_secret=SECRET,
                      confirm_slices={"record": 1, **{f"confirm_c{c}": per_level for c in levels}},
                      create_carts=2000 if not args.smoke else 50, delete_carts=500 if not args.smoke else 20,
                      pgbench_payments=0 if args.sqlite else int(6000 * pgbench_seconds * 1.5) + 100)
        print(f"seeded {seeded.counts} in {time.monotonic() - started:.1f} s", file=sys.stderr)
        server = Server(db.url, args.workers, workdir / "gunicorn.log")
        rows = []
        chosen = args.only.split(",") if args.only else [name for name, _, _ in SCENARIOS]
        for name, file_key, expected in (s for s in SCENARIOS if s[0] in chosen):
            for c in levels:
                request_file = seeded.files[f"confirm_c{c}" if file_key == "confirm" else file_key]
                result = run_wrk(server.base, request_file, c, args.seconds, expected, seeded.token)
                rows.append((name, c, result))
                if result["wrapped"] and file_key == "confirm":
                    print(f"warning: {name} at {c} connections ran out of seeded payments; raise --rate",
                          file=sys.stderr)
        rss = server.worker_peak_rss_mb()
        server.stop()
        server = None
        tps = run_pgbench(db, seeded, workdir, 8, pgbench_seconds)
        print_report(args, rows, rss, tps, cpu_check_ms())
        return 0
    finally:
        if server is not None:
            server.stop()
        db.drop()
        shutil.rmtree(workdir, ignore_errors=True)


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


def print_report(args, rows, rss, pgbench, cpu_ms: float) -> None:
    database = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"\n{database}, gunicorn {args.workers} sync workers, wrk {args.seconds:g} s per row, "
          f"{os.cpu_count()} CPUs; CPU check {cpu_ms:.0f} ms (a fixed Python loop; lower is faster)\n")
    print(f"| endpoint | conns | req/s | p50 ms | p90 ms | p99 ms | errors |")
    print(f"|---|---:|---:|---:|---:|---:|---:|")
    for name, c, r in rows:
        print(f"| {name} | {c} | {r['rps']:.0f} | {r['p50_us'] / 1000:.2f} | {r['p90_us'] / 1000:.2f} | "
              f"{r['p99_us'] / 1000:.2f} | {r['errors']} |")
    by = {(name, c): r for name, c, r in rows}
    print()
    for c in sorted({c for _, c, _ in rows}):
        confirm, baseline = by.get(("confirm", c)), by.get(("baseline", c))
        if confirm and baseline:
            print(f"confirm/baseline at {c} connections: {confirm['rps'] / baseline['rps']:.1%}")
    confirm8 = by.get(("confirm", 8))
    if pgbench:
        print(f"pgbench, same SQL as one confirm, 8 clients: {pgbench['tps']:.0f} tps "
              f"({pgbench['transactions']} transactions counted of {pgbench['started']} started, "
              f"{pgbench['confirmed']} payments confirmed with their booking, {pgbench['failed']} failed)")
        if confirm8:
            print(f"confirm/pgbench at 8 connections: {confirm8['rps'] / pgbench['tps']:.1%}")
    if rss:
        print(f"peak RSS per worker: {', '.join(f'{mb:.0f} MB' for mb in rss)}")


if __name__ == "__main__":
    sys.exit(main())
