"""`make bench ARGS="--peers naive,seed,before"`: the working tree and its peers, measured in one run.

The peers (bench/peers/) are what users would run instead: this service at an earlier commit
(`--against`), a naive Flask-SQLAlchemy confirm, and the old Django system of seed 000. Each one
gets its own fresh database on the same server, migrated with the schema its code expects, and
its own gunicorn with the same workers and worker class; this tree's seeding and request files
drive them all. Before measuring, each must pass one valid confirm that books (`check_confirm`).
Rounds alternate, forward then backward (ours, before, naive, seed, then seed, naive, before,
ours, ...), each on freshly seeded payments, so that the machine's drift and the order fall on
all alike. The report gives each one's medians and its ratios to ours within this run: only
those compare, never numbers from two runs.
"""

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from sqlalchemy import create_engine, text

from bench import peers
from bench.seed import confirms_needed, seed
from bench.stack import ROOT, SECRET, Database, Server, cpu_check_ms, run_wrk

SCENARIOS = [("baseline", 200), ("confirm", 200)]  # name, expected status: every server answers these
# Only this service answers these (ours and *before*): the peers implement the confirm alone.
SERVICE_SCENARIOS = SCENARIOS + [("deletion_status", 200)]
OURS = "ours"


@dataclass
class Contender:
    """One server under test, on its own database, with the results of its rounds."""

    label: str
    database: Database
    server: Server
    scenarios: list[tuple[str, int]]
    rounds: list[dict[tuple[str, int], dict]] = field(default_factory=list)


@contextmanager
def served(label: str, key: str, args, workdir: Path, *, schema_from: Path = ROOT,
           scenarios: list[tuple[str, int]] = SCENARIOS, **server_options):
    """A fresh database migrated by `schema_from`'s own code, and a server on it that confirms correctly."""
    started = time.monotonic()
    database = Database(args.sqlite, workdir, name=f"bench_{os.getpid()}_{key}")
    server = None
    try:
        database.migrate(schema_from)
        server = Server(database.url, args.workers, workdir / f"gunicorn-{key}.log", **server_options)
        contender = Contender(label, database, server, scenarios)
        check_confirm(contender, workdir / f"check-{key}")
        print(f"{label}: migrated, serving and checked in {time.monotonic() - started:.1f} s", file=sys.stderr)
        yield contender
    finally:
        if server is not None:
            server.stop()
        database.drop()


def check_confirm(contender: Contender, out_dir: Path) -> None:
    """Exit unless one valid confirm answers 200 and books: the payment SUCCESS, its cart CONVERTED, one booking.

    wrk counts only status codes; this catches a server that answers 200 without doing the work.
    """
    seeded = seed(contender.database.url, out_dir, gateway_secret=SECRET, create_carts=0, delete_carts=0,
                  confirm_slices={"check": 1})
    method, path, body = seeded.files["check"].read_text().splitlines()[0].split("\t")
    request = urllib.request.Request(contender.server.base + path, data=body.encode(), method=method, headers={
        "Authorization": f"Bearer {seeded.token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, answered = answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        status, answered = error.code, error.read()[:500]
    transaction_id = path.split("/")[3]
    engine = create_engine(contender.database.url)
    with engine.connect() as conn:
        written = conn.execute(text(
            "SELECT p.status, c.status, (SELECT count(*) FROM bookings b WHERE b.transaction_id = p.transaction_id) "
            "FROM payments p JOIN carts c ON c.id = p.cart_id WHERE p.transaction_id = :t"),
            {"t": transaction_id}).one()
    engine.dispose()
    if status != 200 or tuple(written) != ("SUCCESS", "CONVERTED", 1):
        sys.exit(f"{contender.label} answered a valid confirm wrongly: {status} {answered!r}; payment, cart and "
                 f"bookings after it: {tuple(written)}, expected ('SUCCESS', 'CONVERTED', 1)")


def measure_round(contender: Contender, levels: list[int], args, out_dir: Path) -> dict[tuple[str, int], dict]:
    """Seed fresh payments for this round, then run every scenario at every connection count."""
    started = time.monotonic()
    seeded = seed(contender.database.url, out_dir, gateway_secret=SECRET, create_carts=0,
                  delete_carts=500 if ("deletion_status", 200) in contender.scenarios else 0,
                  confirm_slices={f"confirm_c{c}": confirms_needed(args.rate, args.seconds) for c in levels})
    results = {}
    for name, expected in contender.scenarios:
        for c in levels:
            request_file = seeded.files[f"confirm_c{c}" if name == "confirm" else name]
            result = run_wrk(contender.server.base, request_file, c, args.seconds, expected, seeded.token)
            if result["wrapped"] and name == "confirm":
                print(f"warning: {contender.label}: confirm at {c} connections ran out of seeded payments; "
                      "raise --rate", file=sys.stderr)
            results[(name, c)] = result
    print(f"{contender.label}: round {len(contender.rounds) + 1} seeded and measured in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    return results


def compare(args, levels: list[int]) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-sbs-"))
    try:
        with ExitStack() as stack:
            contenders = [stack.enter_context(served(OURS, "ours", args, workdir, scenarios=SERVICE_SCENARIOS))]
            contenders += [stack.enter_context(peers.served(name, args, workdir)) for name in args.peers]
            for n in range(args.rounds):
                for contender in contenders if n % 2 == 0 else reversed(contenders):
                    out_dir = workdir / f"round{n}-{contender.database.name}"
                    contender.rounds.append(measure_round(contender, levels, args, out_dir))
        print_report(args, levels, contenders, cpu_check_ms())
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def median_of(contender: Contender, scenario: str, c: int, key: str) -> float:
    return median(results[(scenario, c)][key] for results in contender.rounds)


def confirm_share(contender: Contender, c: int) -> float:
    """Confirm's throughput as a share of the bare baseline's: what the confirm itself costs."""
    return median_of(contender, "confirm", c, "rps") / median_of(contender, "baseline", c, "rps")


def connections(c: int) -> str:
    return f"{c} connection{'' if c == 1 else 's'}"


def table_row(contender: Contender, scenario: str, c: int) -> str:
    by_round = [results[(scenario, c)] for results in contender.rounds]
    rps_by_round = ", ".join(f"{r['rps']:.0f}" for r in by_round)
    return (f"| {contender.label} | {scenario} | {c} | {median_of(contender, scenario, c, 'rps'):.0f} | "
            f"{median_of(contender, scenario, c, 'p50_us') / 1000:.2f} | "
            f"{median_of(contender, scenario, c, 'p99_us') / 1000:.2f} | "
            f"{sum(r['errors'] for r in by_round)} | {rps_by_round} |")


def beside_ours(ours: Contender, peer: Contender, scenario: str, c: int) -> str:
    """One peer's `scenario` beside ours: each median, and ours over theirs."""
    cells = []
    for key, scale, digits in (("rps", 1, 0), ("p50_us", 1000, 2), ("p99_us", 1000, 2)):
        theirs, mine = median_of(peer, scenario, c, key), median_of(ours, scenario, c, key)
        cells.append(f"{theirs / scale:.{digits}f} | {mine / scale:.{digits}f} | {mine / theirs:.2f}")
    by_round = ", ".join(f"{o[(scenario, c)]['rps'] / p[(scenario, c)]['rps']:.2f}"
                         for o, p in zip(ours.rounds, peer.rounds))
    return f"| {peer.label} | {scenario} | {c} | {' | '.join(cells)} | {by_round} |"


def print_report(args, levels: list[int], contenders: list[Contender], cpu_ms: float) -> None:
    ours, others = contenders[0], contenders[1:]
    database = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"\n{database}, gunicorn {args.workers} sync workers, wrk {args.seconds:g} s per row, "
          f"{os.cpu_count()} CPUs; CPU check {cpu_ms:.0f} ms (a fixed Python loop; lower is faster)")
    print(f"{args.rounds} rounds alternating {', '.join(c.label for c in contenders)} (every other round in "
          "reverse), each on fresh payments; each row is the median of its server's rounds")
    print(f"ours: the working tree; {'; '.join(peers.describe(name, args) for name in args.peers)}\n")
    print("| server | endpoint | conns | req/s | p50 ms | p99 ms | errors | req/s by round |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for contender in contenders:
        for scenario, _ in contender.scenarios:
            for c in levels:
                print(table_row(contender, scenario, c))
    print()
    for c in levels:
        shares = ", ".join(f"{contender.label} {confirm_share(contender, c):.1%}" for contender in contenders)
        print(f"confirm/baseline at {connections(c)}: {shares}")
    print("\neach peer beside ours (ours/theirs: above 1 for req/s, below 1 for p50 and p99, is ours better)\n")
    print("| peer | endpoint | conns | req/s | ours | ours/theirs | p50 ms | ours | ours/theirs | p99 ms | ours "
          "| ours/theirs | req/s ours/theirs by round |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for peer in others:
        for scenario, _ in peer.scenarios:
            if scenario != "baseline":
                for c in levels:
                    print(beside_ours(ours, peer, scenario, c))
    print("\nCompare only ratios measured within one run, as these: the machine's speed drifts between runs "
          "(see the CPU check), so absolute numbers from different runs do not compare.")
