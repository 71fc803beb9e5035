"""The serving set-up, chosen by measurement: baseline and confirm per candidate and connection count,
and whether slow clients stall it (/healthz under 50 of them).

    python -m bench.front --seconds 5                       # every candidate, at 1, 8 and 32 connections
    python -m bench.front --only nginx,nginx-granian --connections 8
    GRANIAN=/path/to/granian python -m bench.front ...      # granian from a virtualenv of its own

Each candidate serves the same app (the bench app, 3 workers) on one fresh PostgreSQL database;
wrk drives the bare baseline and confirms at each connection count, then 50 loopback clients that
never finish their request (idle, a header byte a second, a body byte a second) are held open
while /healthz is timed. A faster server raises the baseline too: compare confirm itself across
candidates, confirm/baseline only within one.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.seed import confirms_needed, seed
from bench.stack import (BIN, ROOT, SECRET, Database, checkout_env, cpu_check_ms, free_port, need, run_wrk,
                         stop_cleanly_on_sigterm)
from deploy import nginx_config

WORKERS = 3
SLOW_CLIENTS = 50
HEALTHZ_SAMPLES = 10
HEALTHZ_TIMEOUT_SECONDS = 2.0


class Processes:
    """Servers started for one candidate, each in its own process group; stopped together."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs = []

    def start(self, name: str, command: list[str], env: dict) -> None:
        log = open(self.workdir / f"{name}.log", "w")
        self.procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True))

    def wait_for(self, base: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/bench/baseline", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        sys.exit(f"{base} did not answer; see the logs in {self.workdir}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def gunicorn(procs: Processes, env: dict, *options: str) -> str:
    port = free_port()
    procs.start("gunicorn", [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
                             "--no-control-socket", *options, "bench_app:create_bench_app()"], env)
    return f"127.0.0.1:{port}"


def start_sync(procs, env):
    return gunicorn(procs, env, "--worker-class", "sync")


def start_gthread(procs, env):
    return gunicorn(procs, env, "--worker-class", "gthread", "--threads", "4")


def nginx_before(start_upstream):
    """nginx (deploy/nginx.conf) in front of the server `start_upstream` starts."""
    return lambda procs, env: start_nginx(procs, env, start_upstream(procs, env))


def start_nginx(procs, env, upstream):
    runtime = Path(tempfile.mkdtemp(prefix="front-nginx-"))
    runtime.chmod(0o755)  # nginx's workers run as nobody when started by root
    listen = f"127.0.0.1:{free_port()}"
    config = runtime / "nginx.conf"
    config.write_text(nginx_config(listen, upstream, runtime))
    procs.start("nginx", [need("nginx", "apt-get install nginx libnginx-mod-http-js"), "-e",
                          str(runtime / "error.log"), "-c", str(config), "-g", "daemon off;"], env)
    return listen


def start_granian(procs, env):
    port = free_port()
    procs.start("granian", [os.environ.get("GRANIAN", "granian"), "--interface", "wsgi", "--host", "127.0.0.1",
                            "--port", str(port), "--workers", str(WORKERS), "--blocking-threads", "1", "--factory",
                            "bench_app:create_bench_app"], env)
    return f"127.0.0.1:{port}"


CANDIDATES = {  # name: (description, start)
    "sync": ("gunicorn, 3 sync workers, no front", start_sync),
    "gthread": ("gunicorn, 3 gthread workers x 4 threads, no front", start_gthread),
    "granian": ("granian WSGI, 3 workers, no front", start_granian),
    "nginx": ("nginx + gunicorn, 3 sync workers", nginx_before(start_sync)),
    "nginx-gthread": ("nginx + gunicorn, 3 gthread workers x 4 threads", nginx_before(start_gthread)),
    "nginx-granian": ("nginx + granian WSGI, 3 workers", nginx_before(start_granian)),
}
SCENARIOS = ("baseline", "confirm")


def hold_slow_clients(address: str, count: int, stop: threading.Event) -> list[threading.Thread]:
    """`count` connections that never finish a request: idle, trickling headers, trickling a body."""
    host, port = address.rsplit(":", 1)

    def client(kind: int) -> None:
        try:
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                if kind == 1:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
                elif kind == 2:
                    sock.sendall(b"POST /api/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 1000\r\n\r\n")
                while not stop.wait(1.0):
                    if kind:
                        sock.sendall(b"X" if kind == 1 else b" ")
        except OSError:
            pass  # the server gave up on it: that is allowed

    threads = [threading.Thread(target=client, args=(i % 3,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads


def healthz_under_slow_clients(address: str) -> dict:
    stop = threading.Event()
    threads = hold_slow_clients(address, SLOW_CLIENTS, stop)
    time.sleep(1.5)  # every slow client connected and started
    latencies, failures = [], 0
    try:
        for _ in range(HEALTHZ_SAMPLES):
            started = time.perf_counter()
            try:
                urllib.request.urlopen(f"http://{address}/healthz", timeout=HEALTHZ_TIMEOUT_SECONDS).read()
                latencies.append((time.perf_counter() - started) * 1000)
            except OSError:
                failures += 1
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    latencies.sort()
    return {"p50_ms": latencies[len(latencies) // 2] if latencies else None,
            "max_ms": latencies[-1] if latencies else None, "failures": failures}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="length of each wrk run")
    parser.add_argument("--only", help=f"comma-separated candidates (default: all of {','.join(CANDIDATES)})")
    parser.add_argument("--connections", default="1,8,32", help="comma-separated connection counts")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(CANDIDATES)
    levels = [int(c) for c in args.connections.split(",")]
    need("wrk", "apt-get install wrk")
    stop_cleanly_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="bench-front-"))
    db = Database(False, workdir, name=f"bench_front_{os.getpid()}")
    rows = []
    try:
        db.migrate()
        seeded = seed(db.url, workdir, gateway_secret=SECRET,
                      confirm_slices={f"confirm_{name}_{c}": confirms_needed(1000, args.seconds)
                                      for name in chosen for c in levels},
                      create_carts=10, delete_carts=10)
        env = checkout_env(ROOT, db.url)
        for name in chosen:
            procs = Processes(workdir)
            try:
                address = CANDIDATES[name][1](procs, env)
                procs.wait_for(f"http://{address}")
                measured = {(scenario, c): run_wrk(f"http://{address}", seeded.files[
                    f"confirm_{name}_{c}" if scenario == "confirm" else scenario], c, args.seconds, 200, seeded.token)
                    for scenario in SCENARIOS for c in levels}
                rows.append((name, measured, healthz_under_slow_clients(address)))
            finally:
                procs.stop()
    finally:
        db.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nPostgreSQL, {WORKERS} workers, wrk {args.seconds:g} s per row, {os.cpu_count()} CPUs; CPU check "
          f"{cpu_check_ms():.0f} ms (a fixed Python loop; lower is faster)\n")
    print("| set-up | endpoint | conns | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, measured, _ in rows:
        for (scenario, c), r in measured.items():
            print(f"| {CANDIDATES[name][0]} | {scenario} | {c} | {r['rps']:.0f} | {r['p50_us'] / 1000:.2f} | "
                  f"{r['p99_us'] / 1000:.2f} | {r['errors']} |")
    print(f"\n/healthz while {SLOW_CLIENTS} slow clients are held ({HEALTHZ_SAMPLES} samples, "
          f"{HEALTHZ_TIMEOUT_SECONDS:g} s timeout)\n")
    print("| set-up | /healthz p50 ms | /healthz max ms | timed out |")
    print("|---|---:|---:|---:|")
    for name, _, h in rows:
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        print(f"| {CANDIDATES[name][0]} | {fmt(h['p50_ms'])} | {fmt(h['max_ms'])} | "
              f"{h['failures']}/{HEALTHZ_SAMPLES} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
