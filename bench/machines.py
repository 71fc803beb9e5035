"""What the state machines cost: one trigger validated through the shared machine,
against a plain dict lookup and against a whole confirm request (in-process).

    python -m bench.machines [--database-url URL] [--confirms N]
"""

import argparse
import os
import sys
import timeit
import uuid
from pathlib import Path

from machines import PAYMENT_MACHINE

PLAIN_TABLE = {("PENDING", "succeed"): "SUCCESS"}


def per_call_us(fn, number: int = 20000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def machine_costs() -> dict[str, float]:
    return {
        "machine.decide('succeed', PENDING)": per_call_us(
            lambda: PAYMENT_MACHINE.decide("succeed", "PENDING", verified=True)),
        "machine.sources('supersede')": per_call_us(lambda: PAYMENT_MACHINE.sources("supersede")),
        "plain dict lookup": per_call_us(lambda: PLAIN_TABLE[("PENDING", "succeed")]),
    }


def confirm_request_ms(database_url: str, confirms: int) -> tuple[float, float]:
    """Mean wall time of one POST .../confirm/ through Flask's test client, database included, and how many
    triggers the machines decided for each (counted, not assumed)."""
    import time

    from machines.table import TransitionTable

    from tests.builders import make_cart, make_payment, register, confirm
    from web import create_app
    from web.cli import init_db

    devnull = open(os.devnull, "w")
    decide = TransitionTable.decide
    stdout, sys.stdout = sys.stdout, devnull  # the app's JSON log lines are not this command's report
    try:
        app = create_app({"DATABASE_URL": database_url, "SCHEDULER_ENABLED": False, "LOG_FORMAT": "json",
                          "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})
        with app.app_context():
            init_db()
        client = app.test_client()
        user = register(client, email=f"bench-{uuid.uuid4()}@example.com")
        payments = [make_payment(app, client, user, make_cart(app, client, user)["cart_id"])
                    for _ in range(confirms)]
        decided = 0

        def counted(*args, **kwargs):
            nonlocal decided
            decided += 1
            return decide(*args, **kwargs)

        TransitionTable.decide = counted
        started = time.perf_counter()
        for payment in payments:
            assert confirm(app, client, user, payment).status_code == 200
        elapsed = time.perf_counter() - started
    finally:
        TransitionTable.decide = decide
        sys.stdout = stdout
    return elapsed / confirms * 1000, decided / confirms


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--confirms", type=int, default=300)
    args = parser.parse_args(argv)
    costs = machine_costs()
    for name, us in costs.items():
        print(f"{name:40s} {us:8.2f} µs")
    url = args.database_url or f"sqlite:///{Path('/tmp') / f'bench-machines-{uuid.uuid4().hex}.db'}"
    request_ms, decisions = confirm_request_ms(url, args.confirms)
    decide = costs["machine.decide('succeed', PENDING)"]
    print(f"{'confirm request, in-process':40s} {request_ms * 1000:8.0f} µs")
    print(f"triggers decided per confirm: {decisions:g}")
    print(f"machines' share of one confirm: {decisions * decide / (request_ms * 1000):.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
