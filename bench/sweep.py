"""The sweep at scale: cancel N stale payments with the real sweep (history rows included),
report payments/s, the longest batch and the share of its time spent in batches, and confirm p99
with and without a sweep running (the sweep paced at --share, default persistence.sweep.BUSY_SHARE).

    python -m bench.sweep --payments 100000 --payments 1000000 [--share 0.33]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stack import BIN, ROOT, SECRET, Database, Server, cpu_check_ms, run_wrk
from bench.seed import seed
from persistence.sweep import BUSY_SHARE

SWEEP_SCRIPT = """
import json, sys, time
from web import create_app
from persistence.sweep import sweep
app = create_app({"SCHEDULER_ENABLED": False})
with app.app_context():
    result = sweep(now=app.config["CLOCK"](), timeout_minutes=app.config["PAYMENT_TIMEOUT_MINUTES"],
                   share=float(sys.argv[1]))
holds = sorted(result.batch_holds_s)
print("SWEEP " + json.dumps({"cancelled": len(result.cancelled), "batches": result.batches,
                              "seconds": result.duration_s, "longest_batch_ms": holds[-1] * 1000,
                              "median_batch_ms": holds[len(holds) // 2] * 1000,
                              "batches_over_50_ms": sum(h > 0.05 for h in holds),
                              "busy_share": sum(holds) / result.duration_s}))
"""


def run_sweep(url: str, log: Path, share: float) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "DATABASE_URL": url, "SCHEDULER_ENABLED": "false"}
    out = log.open("w")
    return subprocess.Popen([str(BIN / "python"), "-c", SWEEP_SCRIPT, str(share)], cwd=ROOT, env=env,
                            stdout=out, stderr=subprocess.STDOUT), log


def sweep_result(log: Path) -> dict:
    for line in log.read_text().splitlines():
        if line.startswith("SWEEP "):
            return json.loads(line[6:])
    sys.exit(f"the sweep did not report; see {log}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payments", type=int, action="append", help="stale payments to seed (repeatable)")
    parser.add_argument("--seconds", type=int, default=10, help="length of each confirm measurement")
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) + 1)
    parser.add_argument("--share", type=float, default=BUSY_SHARE,
                        help="share of the time the sweep may spend in its batches (1: no rests)")
    args = parser.parse_args(argv)
    sizes = args.payments or [100_000]
    rows = []
    for size in sizes:
        workdir = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
        db = Database(False, workdir)
        server = None
        try:
            db.migrate()
            confirms = 1500 * args.seconds * 3
            seeded = seed(db.url, workdir, gateway_secret=SECRET,
                          confirm_slices={"confirm_quiet": confirms, "confirm_during": confirms},
                          create_carts=0, delete_carts=0, stale_payments=size)
            server = Server(db.url, args.workers, workdir / "gunicorn.log")
            quiet = run_wrk(server.base, seeded.files["confirm_quiet"], 8, args.seconds, 200, seeded.token)
            sweeper, log = run_sweep(db.url, workdir / "sweep.log", args.share)
            time.sleep(1)  # let the sweep get going before measuring under it
            during = run_wrk(server.base, seeded.files["confirm_during"], 8, args.seconds, 200, seeded.token)
            still_sweeping = sweeper.poll() is None
            sweeper.wait(timeout=3600)
            result = sweep_result(log)
            rows.append((size, result, quiet, during, still_sweeping))
        finally:
            if server is not None:
                server.stop()
            db.drop()
    print(f"\nCPU check {cpu_check_ms():.0f} ms (a fixed Python loop; lower is faster)")
    print(f"\nSweep share {args.share} (time in batches; measured below as busy share)")
    print("\n| stale payments | sweep s | payments/s | batches | locks held per batch, median ms | longest ms "
          "| batches over 50 ms | busy share | confirm p99 quiet ms | confirm p99 during sweep ms | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, r, quiet, during, overlapped in rows:
        note = "" if overlapped else " (sweep ended before the measurement did)"
        print(f"| {size:,} | {r['seconds']:.1f} | {r['cancelled'] / r['seconds']:,.0f} | {r['batches']} | "
              f"{r['median_batch_ms']:.1f} | {r['longest_batch_ms']:.1f} | {r['batches_over_50_ms']} | "
              f"{r['busy_share']:.2f} | "
              f"{quiet['p99_us'] / 1000:.2f} | {during['p99_us'] / 1000:.2f} | "
              f"{during['p99_us'] / quiet['p99_us']:.2f}{note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
