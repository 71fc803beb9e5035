"""`make bench ARGS="--against <commit>"`: the working tree and one commit, measured in one run.

Each checkout gets its own fresh database, migrated by its own `flask --app web init-db`, and its
own gunicorn with the same settings; this tree's seeding and request files drive both. Rounds
alternate (working tree, commit, working tree, commit, ...), each on freshly seeded payments, so
that the machine's drift falls on both alike. The report gives each checkout's medians and the
ratios within this run: only those compare, never numbers from two runs.
"""

import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from bench.checkout import export, resolve
from bench.seed import confirms_needed, seed
from bench.stack import ROOT, SECRET, Database, Server, cpu_check_ms, run_wrk

# name, expected status. `authenticated` is the baseline behind the checkout's bearer check: the difference is
# what authenticating a request costs.
SCENARIOS = [("baseline", 200), ("authenticated", 200), ("confirm", 200)]


@dataclass
class Contender:
    """One checkout under test, served on its own database, with the results of its rounds."""

    label: str
    database: Database
    server: Server
    rounds: list[dict[tuple[str, int], dict]] = field(default_factory=list)


@contextmanager
def served(label: str, checkout: Path, key: str, args, workdir: Path):
    started = time.monotonic()
    database = Database(args.sqlite, workdir, name=f"bench_{os.getpid()}_{key}")
    server = None
    try:
        database.migrate(checkout)
        server = Server(database.url, args.workers, workdir / f"gunicorn-{key}.log", checkout)
        print(f"{label}: migrated and serving in {time.monotonic() - started:.1f} s", file=sys.stderr)
        yield Contender(label, database, server)
    finally:
        if server is not None:
            server.stop()
        database.drop()


def measure_round(contender: Contender, levels: list[int], args, out_dir: Path) -> dict[tuple[str, int], dict]:
    """Seed fresh payments for this round, then run every scenario at every connection count."""
    started = time.monotonic()
    seeded = seed(contender.database.url, out_dir, gateway_secret=SECRET, create_carts=0, delete_carts=0,
                  confirm_slices={f"confirm_c{c}": confirms_needed(args.rate, args.seconds) for c in levels})
    results = {}
    for name, expected in SCENARIOS:
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
    commit_id = resolve(args.against)
    workdir = Path(tempfile.mkdtemp(prefix="bench-sbs-"))
    try:
        old_tree = export(commit_id, workdir / "checkout")
        with ExitStack() as stack:
            contenders = [stack.enter_context(served("working tree", ROOT, "new", args, workdir)),
                          stack.enter_context(served(f"{args.against} ({commit_id[:10]})", old_tree, "old", args,
                                                     workdir))]
            for n in range(args.rounds):
                for contender in contenders:
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


def bearer_check_ms(contender: Contender, c: int) -> float:
    """What the bearer check adds to a request: the authenticated route's median latency less the baseline's."""
    return (median_of(contender, "authenticated", c, "p50_us") - median_of(contender, "baseline", c, "p50_us")) / 1000


def connections(c: int) -> str:
    return f"{c} connection{'' if c == 1 else 's'}"


def table_row(contender: Contender, scenario: str, c: int) -> str:
    by_round = [results[(scenario, c)] for results in contender.rounds]
    rps_by_round = ", ".join(f"{r['rps']:.0f}" for r in by_round)
    return (f"| {contender.label} | {scenario} | {c} | {median_of(contender, scenario, c, 'rps'):.0f} | "
            f"{median_of(contender, scenario, c, 'p50_us') / 1000:.2f} | "
            f"{median_of(contender, scenario, c, 'p99_us') / 1000:.2f} | "
            f"{sum(r['errors'] for r in by_round)} | {rps_by_round} |")


def print_report(args, levels: list[int], contenders: list[Contender], cpu_ms: float) -> None:
    new, old = contenders
    database = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"\n{database}, gunicorn {args.workers} sync workers, wrk {args.seconds:g} s per row, "
          f"{os.cpu_count()} CPUs; CPU check {cpu_ms:.0f} ms (a fixed Python loop; lower is faster)")
    print(f"{args.rounds} rounds alternating {new.label} and {old.label}, each on fresh payments; "
          "each row is the median of its checkout's rounds\n")
    print("| checkout | endpoint | conns | req/s | p50 ms | p99 ms | errors | req/s by round |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for contender in contenders:
        for scenario, _ in SCENARIOS:
            for c in levels:
                print(table_row(contender, scenario, c))
    print()
    for c in levels:
        shares = ", ".join(f"{contender.label} {confirm_share(contender, c):.1%}" for contender in contenders)
        print(f"confirm/baseline at {connections(c)}: {shares}")
    for c in levels:
        costs = ", ".join(f"{contender.label} {bearer_check_ms(contender, c):.3f} ms" for contender in contenders)
        print(f"bearer check per request (authenticated p50 - baseline p50) at {connections(c)}: {costs}")
    for c in levels:
        ratio = median_of(new, "confirm", c, "rps") / median_of(old, "confirm", c, "rps")
        by_round = ", ".join(f"{n[('confirm', c)]['rps'] / o[('confirm', c)]['rps']:.2f}"
                             for n, o in zip(new.rounds, old.rounds))
        print(f"confirm req/s, {new.label} / {old.label}, at {connections(c)}: {ratio:.2f} (by round: {by_round})")
    print("\nCompare only ratios measured within one run, as these: the machine's speed drifts between runs "
          "(see the CPU check), so absolute numbers from different runs do not compare.")
