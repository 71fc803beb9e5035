"""The benchmark harness still works: tiny runs of `bench.run` (alone and beside its peers), `bench.sweep`
and `bench.machines`.

Benchmarks are not tests; these check only that each command runs to the
end and prints its table with every row answered as expected (no timing is
asserted). `bench.run` and `bench.sweep` need wrk (`apt-get install wrk`) and
skip, saying so, without it; PostgreSQL runs use TEST_DATABASE_URL's server.
The peers' run makes the seed peer's virtualenv from PyPI the first time
(bench/peers/seed/__init__.py: about 15 s) and reuses it after.
"""

import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy.engine import make_url

from bench.side_by_side import Contender, check_confirm
from bench.stack import Database
from tests.skips import skip_or_fail

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 300
ROW = re.compile(r"^\| (?P<name>[a-z_ ()0-9]+) \| (?P<conns>\d+) \| (?P<rps>\d+) \|.* \| (?P<errors>\d+) \|$", re.M)
SIDE_BY_SIDE_ROW = re.compile(r"^\| (?P<server>[^|]+) \| (?P<name>baseline|confirm|deletion_status) \| "
                              r"(?P<conns>\d+) \| "
                              r"(?P<rps>\d+) \|.* \| (?P<errors>\d+) \| (?P<by_round>[\d, ]+) \|$", re.M)
BESIDE_OURS_ROW = re.compile(r"^\| (?P<peer>[^|]+) \| (?P<name>confirm|deletion_status) \| (?P<conns>\d+) \| "
                             r"(?P<cells>(?:[\d.]+ \| ){9})"
                             r"(?P<by_round>[\d., ]+) \|$", re.M)


def postgres_server_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        return None
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


def needs_wrk() -> None:
    if shutil.which("wrk") is None:
        skip_or_fail("the benchmark harness drives the server with wrk: apt-get install wrk")


def run(module: str, *args: str, server: str | None = None) -> str:
    env = {**os.environ, "SCHEDULER_ENABLED": "false"}
    if server:
        env["BENCH_DATABASE_SERVER"] = server
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_SECONDS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def assert_every_endpoint_answered(output: str) -> None:
    rows = {m["name"]: m for m in ROW.finditer(output)}
    assert set(rows) == {"baseline", "authenticated", "confirm", "create payment", "deletion_status",
                         "delete (409)"}, output
    for name, row in rows.items():
        assert int(row["rps"]) > 0 and row["errors"] == "0", (name, output)


def test_make_bench_smoke_on_sqlite():
    needs_wrk()
    output = run("bench.run", "--smoke", "--sqlite")
    assert output.lstrip().startswith("SQLite, gunicorn 2 sync workers")
    assert_every_endpoint_answered(output)
    assert "confirm/baseline at 2 connections:" in output
    assert re.search(r"bearer check per request \(authenticated p50 - baseline p50\) at 2 connections: -?[\d.]+ ms",
                     output), output
    assert re.search(r"peak RSS per worker: \d+ MB", output), output


def test_make_bench_smoke_on_postgresql():
    server = postgres_server_url()
    if server is None:
        skip_or_fail("the PostgreSQL benchmark needs TEST_DATABASE_URL=postgresql+psycopg://... (.ci/run sets it)")
    needs_wrk()
    output = run("bench.run", "--smoke", server=server)
    assert output.lstrip().startswith("PostgreSQL, gunicorn 2 sync workers")
    assert_every_endpoint_answered(output)


def test_make_bench_smoke_with_peers_measures_each_beside_ours_in_alternating_rounds():
    server = postgres_server_url()
    if server is None:
        skip_or_fail("the peers' benchmark needs TEST_DATABASE_URL=postgresql+psycopg://... (.ci/run sets it)")
    needs_wrk()
    # Each server must first book one valid confirm (bench.side_by_side.check_confirm), or the run fails.
    output = run("bench.run", "--smoke", "--peers", "naive,seed,before", "--against", "HEAD", server=server)
    rows = list(SIDE_BY_SIDE_ROW.finditer(output))
    servers = {row["server"] for row in rows}
    before = next(name for name in servers if name.startswith("before "))
    assert servers == {"ours", "naive", "seed", before}, output
    # deletion_status is this service's own endpoint: measured on ours and *before* only.
    assert sorted((row["server"], row["name"], row["conns"]) for row in rows) == sorted(
        [(name, scenario, "2") for name in servers for scenario in ("baseline", "confirm")]
        + [(name, "deletion_status", "2") for name in ("ours", before)]), output
    for row in rows:
        assert int(row["rps"]) > 0 and row["errors"] == "0", (row.group(0), output)
        assert len(row["by_round"].split(", ")) == 2, (row.group(0), output)
    beside = {(row["peer"], row["name"]): row for row in BESIDE_OURS_ROW.finditer(output)}
    assert set(beside) == {("naive", "confirm"), ("seed", "confirm"), (before, "confirm"),
                           (before, "deletion_status")}, output
    for row in beside.values():
        assert len(row["by_round"].split(", ")) == 2, (row.group(0), output)


class AnswersWithoutBooking(BaseHTTPRequestHandler):
    """A peer gone wrong: 200 to every confirm, or 500 when `status` says so, and nothing written."""

    status = 200

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status", [200, 500])
def test_the_peers_benchmark_stops_at_a_server_that_answers_a_valid_confirm_wrongly(status, monkeypatch, tmp_path):
    server = postgres_server_url()
    if server is None:
        skip_or_fail("the peers' check needs TEST_DATABASE_URL=postgresql+psycopg://... (.ci/run sets it)")
    monkeypatch.setenv("BENCH_DATABASE_SERVER", server)
    database = Database(False, tmp_path, name=f"bench_check_{os.getpid()}")
    stub = ThreadingHTTPServer(("127.0.0.1", 0), type("Stub", (AnswersWithoutBooking,), {"status": status}))
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        database.migrate()
        broken = Contender("broken", database, SimpleNamespace(base=f"http://127.0.0.1:{stub.server_port}"),
                             scenarios=[])
        with pytest.raises(SystemExit, match=rf"broken answered a valid confirm wrongly: {status} .*"
                                             r"\('PENDING', 'ACTIVE', 0\), expected \('SUCCESS', 'CONVERTED', 1\)"):
            check_confirm(broken, tmp_path / "check")
    finally:
        stub.shutdown()
        database.drop()


def test_sweep_benchmark_smoke():
    server = postgres_server_url()
    if server is None:
        skip_or_fail("the sweep benchmark needs TEST_DATABASE_URL=postgresql+psycopg://... (.ci/run sets it)")
    needs_wrk()
    output = run("bench.sweep", "--payments", "1200", "--seconds", "1", "--workers", "2", server=server)
    row = re.search(r"^\| 1,200 \| [\d.]+ \| [\d,]+ \| (\d+) \| [\d.]+ \| [\d.]+ \| \d+ \|", output, re.M)
    assert row and int(row.group(1)) >= 3, output  # 1,200 payments in batches of 500


def test_machine_microbenchmark_smoke():
    output = run("bench.machines", "--confirms", "5")
    assert "machine.decide('succeed', PENDING)" in output
    assert re.search(r"machines' share of one confirm: [\d.]+%", output), output
    assert "triggers decided per confirm: 2" in output, output  # convert and succeed; supersede needs no decision
