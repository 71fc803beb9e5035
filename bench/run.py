"""`make bench`: seed a fresh database, serve the app with gunicorn, drive it with wrk, print one table.

    python -m bench.run                      # PostgreSQL (BENCH_DATABASE_SERVER or 127.0.0.1:5432)
    python -m bench.run --sqlite             # the embedded SQLite default
    python -m bench.run --smoke              # tiny numbers: checks the harness still works
    python -m bench.run --peers naive,seed,before   # the working tree beside its peers (bench/side_by_side.py)
    python -m bench.run --against <commit>   # the working tree beside that commit only (the *before* peer)
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import peers
from bench.peers.before import DEFAULT_COMMIT
from bench.seed import confirms_needed, seed
from bench.side_by_side import compare
from bench.stack import SECRET, Database, Server, cpu_check_ms, need, run_wrk, stop_cleanly_on_sigterm

SCENARIOS = [  # name, request file, expected status
    ("baseline", "baseline", 200),
    ("authenticated", "authenticated", 200),  # the baseline behind the bearer check
    ("confirm", "confirm", 200),
    ("create payment", "create", 201),
    ("deletion_status", "deletion_status", 200),
    ("delete (409)", "delete", 409),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sqlite", action="store_true", help="benchmark the SQLite default instead of PostgreSQL")
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--connections",
                        help="comma-separated connection counts (default 1,8,32; 1,8 with peers; 2 with --smoke)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1)),
                        help="gunicorn sync workers (default as gunicorn.conf.py: one more than the cores)")
    parser.add_argument("--rate", type=int, default=1500, help="expected peak confirms/s, to size the seed")
    parser.add_argument("--smoke", action="store_true", help="tiny run that only checks the harness works")
    parser.add_argument("--only", help="comma-separated endpoints to measure (default: all), e.g. baseline,confirm")
    parser.add_argument("--peers", type=lambda text: text.split(","),
                        help=f"comma-separated peers to serve beside the working tree, of {','.join(peers.NAMES)} "
                             "(bench/peers/); measures baseline and confirm on each (--only does not apply)")
    parser.add_argument("--against", metavar="COMMIT",
                        help=f"the *before* peer's commit (default {DEFAULT_COMMIT}, main when the peers came in); "
                             "without --peers, the working tree beside this commit alone")
    parser.add_argument("--rounds", type=int, default=2, help="with peers: rounds per server, in alternating order")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.peers is None and args.against:
        args.peers = ["before"]
    if unknown := set(args.peers or ()) - set(peers.NAMES):
        parser.error(f"--peers: no peer named {', '.join(sorted(unknown))}; the peers are {', '.join(peers.NAMES)}")
    if args.sqlite and set(args.peers or ()) - {"before"}:
        parser.error("the naive and seed peers run on PostgreSQL only")
    if args.smoke:
        # Rate sized so a fast machine's confirm at 8 connections does not run out of payments in its second.
        args.seconds, args.rate, args.workers = 1, 1000, 2
    default_levels = "2" if args.smoke else "1,8" if args.peers else "1,8,32"
    levels = [int(c) for c in (args.connections or default_levels).split(",")]
    need("wrk", "apt-get install wrk")
    stop_cleanly_on_sigterm()
    if args.peers:
        return compare(args, levels)

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    db = Database(args.sqlite, workdir)
    server = None
    try:
        db.migrate()
        per_level = confirms_needed(args.rate, args.seconds)
        started = time.monotonic()
        seeded = seed(db.url, workdir, gateway_secret=SECRET,
                      confirm_slices={f"confirm_c{c}": per_level for c in levels},
                      create_carts=2000 if not args.smoke else 50, delete_carts=500 if not args.smoke else 20)
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
        print_report(args, rows, rss, cpu_check_ms())
        return 0
    finally:
        if server is not None:
            server.stop()
        db.drop()
        shutil.rmtree(workdir, ignore_errors=True)


def print_report(args, rows, rss, cpu_ms: float) -> None:
    database = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"\n{database}, gunicorn {args.workers} sync workers, wrk {args.seconds:g} s per row, "
          f"{os.cpu_count()} CPUs; CPU check {cpu_ms:.0f} ms (a fixed Python loop; lower is faster)\n")
    print("| endpoint | conns | req/s | p50 ms | p90 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, c, r in rows:
        print(f"| {name} | {c} | {r['rps']:.0f} | {r['p50_us'] / 1000:.2f} | {r['p90_us'] / 1000:.2f} | "
              f"{r['p99_us'] / 1000:.2f} | {r['errors']} |")
    by = {(name, c): r for name, c, r in rows}
    print()
    for c in sorted({c for _, c, _ in rows}):
        confirm, baseline = by.get(("confirm", c)), by.get(("baseline", c))
        if confirm and baseline:
            print(f"confirm/baseline at {c} connections: {confirm['rps'] / baseline['rps']:.1%}")
        authenticated = by.get(("authenticated", c))
        if authenticated and baseline:
            print(f"bearer check per request (authenticated p50 - baseline p50) at {c} connections: "
                  f"{(authenticated['p50_us'] - baseline['p50_us']) / 1000:.3f} ms")
    if rss:
        print(f"peak RSS per worker: {', '.join(f'{mb:.0f} MB' for mb in rss)}")


if __name__ == "__main__":
    sys.exit(main())
