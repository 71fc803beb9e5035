"""Bulk seeding for the benchmarks, straight into the app's tables (SQLite or PostgreSQL).

The tables are read from the migrated database itself, not imported from persistence/: the same
seeding then serves any checkout whose schema has these tables and columns (bench --against),
whatever its code looks like inside.
"""

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import MetaData, Table, create_engine, insert, text

PRICE = Decimal("2500.00")


@dataclass
class Seeded:
    token: str
    user_id: str
    files: dict[str, Path]
    counts: dict[str, int]


def app_tables(engine) -> dict[str, Table]:
    """The tables seeded here, as the database's migrated schema has them."""
    metadata = MetaData()
    metadata.reflect(engine, only=["users", "api_tokens", "services", "carts", "cart_items", "payments"])
    return metadata.tables


def confirms_needed(rate: float, seconds: float) -> int:
    """Payments one confirm row may use up: the expected peak rate over its length, with room to spare."""
    return int(rate * seconds * 1.5) + 100


def _rows(n, make):
    return [make(i) for i in range(n)]


def seed(url: str, out_dir: Path, *, gateway_secret: str, confirm_slices: dict[str, int], create_carts: int,
         delete_carts: int, stale_payments: int = 0, timeout_minutes: float = 30,
         batch: int = 5000) -> Seeded:
    """Seed one user, one service, carts with items and slots, and PENDING payments; write request files."""
    engine = create_engine(url)
    table = app_tables(engine)
    now = datetime.now(UTC)
    user_id, service_id, token = str(uuid.uuid4()), str(uuid.uuid4()), secrets.token_urlsafe(32)
    slot_date, slot_time = date.today() + timedelta(days=30), time(10, 30)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    counter = iter(range(1, 10**9))
    # Order ids are unique across the table: each seeding of one database (a round of bench --against) has its own.
    order_prefix = f"order_bench_{secrets.token_hex(3)}"

    def cart_rows(n: int) -> list[dict]:
        return [dict(id=str(uuid.uuid4()), user_id=user_id, status="ACTIVE", selected_date=slot_date,
                     selected_time=slot_time, created_at=now, updated_at=now) for _ in range(n)]

    def item_rows(carts):
        return [dict(id=str(uuid.uuid4()), cart_id=c["id"], service_id=service_id, quantity=1, unit_price=PRICE,
                     created_at=now) for c in carts]

    def payment_rows(carts, created_at):
        rows = []
        for c in carts:
            n = next(counter)
            rows.append(dict(transaction_id="TXN" + secrets.token_hex(6).upper(),
                             cart_id=c["id"], user_id=user_id, status="PENDING", amount=PRICE, currency="INR",
                             provider_order_id=f"{order_prefix}_{n}",
                             created_at=created_at, updated_at=created_at))
        return rows

    def put(conn, into, rows):
        for start in range(0, len(rows), batch):
            conn.execute(insert(into), rows[start:start + batch])

    with engine.begin() as conn:
        conn.execute(insert(table["users"]), [dict(id=user_id, email=f"bench-{user_id}@example.com",
                                                   password_hash="!", is_admin=False, created_at=now)])
        token_row = dict(token_hash=hashlib.sha256(token.encode()).hexdigest(), user_id=user_id, created_at=now)
        if "expires_at" in table["api_tokens"].c:  # a checkout from before tokens expired has no such column
            token_row["expires_at"] = now + timedelta(days=1)
        conn.execute(insert(table["api_tokens"]), [token_row])
        conn.execute(insert(table["services"]), [dict(id=service_id, name="Bench", price=PRICE, duration_minutes=60,
                                                      created_at=now)])
        counts = {}
        for name, n in confirm_slices.items():
            carts = cart_rows(n)
            payments = payment_rows(carts, now)
            for table_name, rows in (("carts", carts), ("cart_items", item_rows(carts)), ("payments", payments)):
                put(conn, table[table_name], rows)
            files[name] = _write(out_dir / f"{name}.tsv", (
                f"POST\t/api/payments/{p['transaction_id']}/confirm/\t" + json.dumps(
                    {"provider_payment_id": f"pay_{p['provider_order_id']}",
                     "signature": _sign(gateway_secret, p["provider_order_id"], f"pay_{p['provider_order_id']}")})
                for p in payments))
            counts[name] = n
        creatable = cart_rows(create_carts)
        put(conn, table["carts"], creatable)
        put(conn, table["cart_items"], item_rows(creatable))
        files["create"] = _write(out_dir / "create.tsv",
                                 (f"POST\t/api/payments/\t{json.dumps({'cart_id': c['id']})}" for c in creatable))
        blocked = cart_rows(delete_carts)
        put(conn, table["carts"], blocked)
        put(conn, table["cart_items"], item_rows(blocked))
        put(conn, table["payments"], payment_rows(blocked, now))
        files["deletion_status"] = _write(out_dir / "deletion_status.tsv",
                                          (f"GET\t/api/cart/carts/{c['id']}/deletion_status/" for c in blocked))
        files["delete"] = _write(out_dir / "delete.tsv", (f"DELETE\t/api/cart/carts/{c['id']}/" for c in blocked))
        files["baseline"] = _write(out_dir / "baseline.tsv", ["GET\t/bench/baseline"])
        files["authenticated"] = _write(out_dir / "authenticated.tsv", ["GET\t/bench/authenticated"])
        if stale_payments:
            carts = cart_rows(stale_payments)
            put(conn, table["carts"], carts)
            put(conn, table["payments"], payment_rows(carts, now - timedelta(minutes=timeout_minutes + 5)))
        counts.update(create=create_carts, delete=delete_carts, stale=stale_payments)
    if engine.dialect.name == "postgresql":
        # VACUUM too, not only ANALYZE: rows written in bulk seconds ago are what a live database's
        # autovacuum has long since visited. Without it the first read of each row sets its hint bits
        # and dirties its page, a write the measured requests would pay for (and the CI machine's
        # PostgreSQL runs with autovacuum off).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return Seeded(token, user_id, files, counts)


def _sign(secret: str, order_id: str, payment_id: str) -> str:
    return hmac.new(secret.encode(), f"{order_id}|{payment_id}".encode(), hashlib.sha256).hexdigest()


def _write(path: Path, lines) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path
