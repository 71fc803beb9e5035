"""Property: every provider payment the gateway captured ends in exactly one booking or exactly one refund (SPEC §1).

Hypothesis draws a short list of steps and runs them, in that order, against
one app (SQLite or PostgreSQL) whose gateway is a fresh `ScriptedGateway` per
example, on two carts of one customer (different prices). Every example begins
with `Start(cart=0)`; indices of payments and captures wrap around.

- `Start(cart)`: POST /api/payments/ for the cart (201, or 409 once the cart
  is converted or deleted);
- `Capture(payment, via)`: the gateway captures a new provider payment of that
  payment's order, and the capture reaches us by `confirm`, by a `webhook`
  (a new event id), or `never` (only reconciliation can find it);
- `Redeliver(capture, via)`: an earlier capture arrives again, by confirm, by
  the webhook with its last event id (a duplicate) or with a new one;
- `Cancel(payment)`, `Fail(payment)` (a payment.failed webhook),
  `DeleteCart(cart)`;
- `Sweep(minutes)`: the clock moves on, then `cleanup-old-pending-payments`
  times out what is stale (31 minutes is past PAYMENT_TIMEOUT_MINUTES);
- `RefundJob()`: `send-refunds`; `Reconcile()`: `reconcile-payments --hours N`
  with N larger than any example spans; `AdminRetry()`: every FAILED refund
  back to REQUESTED (persistence.refunds.retry, as the admin endpoint will);
- `Fault(call, kind)`: the gateway's next `refund` (transient, permanent,
  lost_answer), `find_refund` or `captured_payments` (transient, permanent) fails.

A payment started twice on one cart and captured once is superseded; a
capture of it is then late, as is one of a cancelled, failed or timed-out payment.

Then the example settles as production would, given time: the clock passes the
timeout and the sweep closes every open payment; reconciliation runs until
the gateway answered for every order; the refund job runs, the clock passing
each backoff, until no refund is REQUESTED (REFUND_MAX_ATTEMPTS is 3 here, so a
refund ends SUCCEEDED or FAILED within a few rounds); a last reconciliation
finds nothing more to refund.

What is checked, for every provider payment the gateway captured (`pid`, of
the order of payment `P`):
1. exactly one of: `P` is SUCCESS with `provider_payment_id == pid` and exactly
   one booking was made from `P`, and no refund row names `pid`; or no
   SUCCESS payment names `pid`, no booking came from it, and exactly one
   refunds row names `pid`, for `P`'s transaction and `P`'s amount. Never both,
   never neither. The refund row is settled (SUCCEEDED or FAILED): the
   guarantee is one refund *record*; a refund the gateway refused for good
   stays FAILED until an admin retries it.
2. the money went back at most once: at most one refund call reached the
   gateway for `pid` (a resend is always preceded by `find_refund`), every
   refund the gateway holds for `pid` carries our one refund_id, the amount
   refunded is at most `P`'s amount, equal to it when the refund SUCCEEDED (and
   the row's provider_refund_id is the gateway's), and zero when `pid` bought a
   booking.
Beside it: no refund row names a provider payment the gateway never captured;
each cart has at most one booking; every booking is one SUCCESS payment's.

A capture that never reaches us (`never`, no redelivery) on an order whose
payment ended SUCCESS with another provider payment is found by reconciliation,
which asks about SUCCESS payments' orders too; the test at the end of this
module shows that case on its own.
"""

import itertools
import re
from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from flask import Flask
from sqlalchemy import select

from persistence import refunds as refund_service
from persistence.db import db
from persistence.models import Booking, Payment, Refund
from persistence.refunds import gateway_key
from tests.builders import make_cart, register, send_webhook, signature, start_payment
from tests.clock import FakeClock
from tests.gateways import ScriptedGateway

TIMEOUT_MINUTES = 30
MAX_ATTEMPTS = 3
RECONCILE_HOURS = "10000"  # far longer than any example, whose clock moves a few hours at most
START = FakeClock().now
PRICES = ("1200.00", "2500.00")  # one cart each
MAX_STEPS = 14
EVENTS = itertools.count(1)

settings.register_profile("refund-guarantee", max_examples=60, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])


def empty_tables(app) -> None:
    """Every example starts from empty tables: DELETE, since on PostgreSQL conftest's TRUNCATE of every
    table costs some 200 ms an example and a DELETE of a few rows 2 ms."""
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()


@dataclass
class Captured:
    """A provider payment the gateway captured, and whether it ever reached us."""

    pid: str
    payment: dict
    delivered: bool = False
    event_ids: list[str] = field(default_factory=list)


@dataclass
class World:
    """One example's app, customer, carts, payments and the captures the gateway made."""

    app: Flask
    clock: FakeClock
    gateway: ScriptedGateway
    user: dict
    carts: list[dict]
    payments: list[dict] = field(default_factory=list)
    captures: list[Captured] = field(default_factory=list)

    @classmethod
    def fresh(cls, app, clock: FakeClock) -> "World":
        empty_tables(app)
        clock.set(START)
        gateway = app.extensions["gateway"] = ScriptedGateway()
        client = app.test_client()
        user = register(client)
        carts = [make_cart(app, client, user, price=price) for price in PRICES]
        return cls(app, clock, gateway, user, carts)

    @property
    def client(self):
        return self.app.test_client()

    def cli(self, *args: str):
        return self.app.test_cli_runner().invoke(args=list(args))

    def payment(self, index: int) -> dict | None:
        return self.payments[index % len(self.payments)] if self.payments else None

    def deliver(self, capture: Captured, via: str) -> None:
        if via == "confirm":
            response = self.client.post(
                f"/api/payments/{capture.payment['transaction_id']}/confirm/", headers=self.user["headers"],
                json={"provider_payment_id": capture.pid,
                      "signature": signature(self.app, capture.payment["provider_order_id"], capture.pid)})
            assert response.status_code in (200, 409), response.json
        else:
            if via == "webhook_new_event" or not capture.event_ids:
                capture.event_ids.append(f"evt_{capture.pid}_{len(capture.event_ids)}")
            response = send_webhook(self.app, self.client, {
                "event_id": capture.event_ids[-1], "event": "payment.captured",
                "provider_order_id": capture.payment["provider_order_id"], "provider_payment_id": capture.pid})
            assert response.status_code == 200, response.json
            assert response.json["outcome"] in ("captured", "already_captured", "refused", "duplicate")
        capture.delivered = True

    def sweep(self) -> None:
        result = self.cli("cleanup-old-pending-payments")
        assert result.exit_code == 0, result.output

    def send_refunds(self) -> None:
        result = self.cli("send-refunds")
        assert result.exit_code == 0, result.output

    def reconcile(self) -> tuple[bool, int]:
        """Run reconciliation once: (did the gateway answer for every order, refunds requested)."""
        result = self.cli("reconcile-payments", "--hours", RECONCILE_HOURS)
        requested = re.search(r"requested (\d+) refunds", result.output)
        assert requested and result.exit_code in (0, 1), result.output
        return result.exit_code == 0, int(requested[1])

    def refund_rows(self, *statuses: str) -> list[Refund]:
        with self.app.app_context():
            query = select(Refund)
            if statuses:
                query = query.where(Refund.status.in_(statuses))
            rows = db.session.scalars(query).all()
            db.session.expunge_all()
            return rows


# The steps. Each is a no-op where it has nothing to act on (no payment yet).

@dataclass(frozen=True)
class Start:
    cart: int

    def __call__(self, world: World) -> None:
        cart = world.carts[self.cart]
        response = start_payment(world.client, world.user, cart["cart_id"])
        assert response.status_code in (201, 409), response.json
        if response.status_code == 201:
            world.payments.append(response.json)


@dataclass(frozen=True)
class Capture:
    payment: int
    via: str

    def __call__(self, world: World) -> None:
        if (payment := world.payment(self.payment)) is None:
            return
        capture = Captured(f"pay_{len(world.captures) + 1}", payment)
        world.gateway.capture(payment["provider_order_id"], capture.pid)
        world.captures.append(capture)
        if self.via != "never":
            world.deliver(capture, self.via)


@dataclass(frozen=True)
class Redeliver:
    capture: int
    via: str

    def __call__(self, world: World) -> None:
        if world.captures:
            world.deliver(world.captures[self.capture % len(world.captures)], self.via)


@dataclass(frozen=True)
class Cancel:
    payment: int

    def __call__(self, world: World) -> None:
        if (payment := world.payment(self.payment)) is not None:
            response = world.client.post(f"/api/payments/{payment['transaction_id']}/cancel/",
                                         headers=world.user["headers"])
            assert response.status_code in (200, 409), response.json


@dataclass(frozen=True)
class Fail:
    payment: int

    def __call__(self, world: World) -> None:
        if (payment := world.payment(self.payment)) is not None:
            response = send_webhook(world.app, world.client, {
                "event_id": f"evt_fail_{next(EVENTS)}",
                "event": "payment.failed", "provider_order_id": payment["provider_order_id"],
                "provider_payment_id": f"pay_failed_{payment['transaction_id']}"})
            assert response.status_code == 200 and response.json["outcome"] in ("failed", "ignored"), response.json


@dataclass(frozen=True)
class DeleteCart:
    cart: int

    def __call__(self, world: World) -> None:
        response = world.client.delete(f"/api/cart/carts/{world.carts[self.cart]['cart_id']}/",
                                       headers=world.user["headers"])
        assert response.status_code in (200, 409), response.json


@dataclass(frozen=True)
class Sweep:
    minutes: int

    def __call__(self, world: World) -> None:
        world.clock.advance(minutes=self.minutes)
        world.sweep()


@dataclass(frozen=True)
class RefundJob:
    def __call__(self, world: World) -> None:
        world.send_refunds()


@dataclass(frozen=True)
class Reconcile:
    def __call__(self, world: World) -> None:
        world.reconcile()


@dataclass(frozen=True)
class AdminRetry:
    def __call__(self, world: World) -> None:
        failed = world.refund_rows("FAILED")
        with world.app.app_context():
            for refund in failed:
                refund_service.retry(refund.id, actor="test:admin", now=world.clock())


@dataclass(frozen=True)
class Fault:
    call: str
    kind: str

    def __call__(self, world: World) -> None:
        world.gateway.fail_next(self.call, self.kind)


PAYMENT = st.integers(0, 3)
FAULTS = [("refund", "transient"), ("refund", "permanent"), ("refund", "lost_answer"),
          ("find_refund", "transient"), ("find_refund", "permanent"),
          ("captured_payments", "transient"), ("captured_payments", "permanent")]
STARTS = st.builds(Start, cart=st.integers(0, len(PRICES) - 1))
# (how often, which steps): payments and their captures are what the guarantee is about.
WEIGHTED = [
    (2, STARTS),
    (5, st.builds(Capture, payment=PAYMENT, via=st.sampled_from(["confirm", "webhook", "never"]))),
    (2, st.builds(Redeliver, capture=st.integers(0, 3),
                  via=st.sampled_from(["confirm", "webhook_same_event", "webhook_new_event"]))),
    (1, st.builds(Cancel, payment=PAYMENT)),
    (1, st.builds(Sweep, minutes=st.sampled_from([5, TIMEOUT_MINUTES + 1]))),
    (1, st.just(RefundJob())),
    (1, st.just(Reconcile())),
    (2, st.sampled_from([Fault(call, kind) for call, kind in FAULTS])),
    (1, st.builds(Fail, payment=PAYMENT)),
    (1, st.builds(DeleteCart, cart=st.integers(0, len(PRICES) - 1))),
    (1, st.just(AdminRetry())),
]
# one_of would count a repeated branch once: draw the kind by weight, then the step.
STEP = st.sampled_from([kind for weight, kind in WEIGHTED for _ in range(weight)]).flatmap(lambda kind: kind)
# Every example starts a payment first: without one there is nothing to capture.
STEPS = st.lists(STEP, min_size=2, max_size=MAX_STEPS - 1).map(lambda rest: [Start(cart=0), *rest])


def settle(world: World) -> None:
    """Let time pass until nothing is left to do: no open payment, no unanswered order, no REQUESTED refund."""
    world.clock.advance(minutes=TIMEOUT_MINUTES + 1)
    world.sweep()
    reconcile_until_answered(world)
    for _ in range(MAX_ATTEMPTS + 1):  # each round claims every due refund; a refund has MAX_ATTEMPTS claims
        if not world.refund_rows("REQUESTED"):
            break
        world.send_refunds()
        world.clock.advance(minutes=61)  # past the longest backoff
    assert not world.refund_rows("REQUESTED"), "the refund job left refunds REQUESTED after every backoff"
    assert reconcile_until_answered(world) == 0, "a second reconciliation found more to refund"


def reconcile_until_answered(world: World) -> int:
    requested = 0
    for _ in range(MAX_STEPS + 1):  # each Fault step queued at most one failure
        answered, more = world.reconcile()
        requested += more
        if answered:
            return requested
    raise AssertionError("reconciliation never got an answer for every order")


@dataclass(frozen=True)
class Outcome:
    """What the database says about one captured provider payment."""

    payment: Payment
    success: list[Payment]
    bookings: list[Booking]
    refunds: list[Refund]


def outcomes(world: World) -> dict[str, Outcome]:
    with world.app.app_context():
        payments = db.session.scalars(select(Payment)).all()
        bookings = db.session.scalars(select(Booking)).all()
        refunds = db.session.scalars(select(Refund)).all()
        db.session.expunge_all()
    by_order = {p.provider_order_id: p for p in payments}
    by_id = {p.transaction_id: p for p in payments}
    captured = {pid: by_order[order] for order, pids in world.gateway.captures.items() for pid in pids}

    assert {r.provider_payment_id for r in refunds} <= set(captured), "a refund of a payment never captured"
    assert len({b.cart_id for b in bookings}) == len(bookings), "a cart with two bookings"
    for booking in bookings:
        bought_with = by_id[booking.transaction_id]
        assert bought_with.status == "SUCCESS" and bought_with.provider_payment_id in captured, booking.id
    assert not [p for p in payments if p.status in ("INITIATED", "PENDING")], "an open payment after the sweep"

    return {pid: Outcome(payment,
                         success=[p for p in payments if p.status == "SUCCESS" and p.provider_payment_id == pid],
                         bookings=[b for b in bookings if b.transaction_id == payment.transaction_id
                                   and payment.provider_payment_id == pid],
                         refunds=[r for r in refunds if r.provider_payment_id == pid])
            for pid, payment in captured.items()}


def check_money(world: World, pid: str, outcome: Outcome) -> None:
    """The gateway gave back at most `P`'s amount for `pid`, once, under our refund's keys."""
    gateway = world.gateway
    calls = [key for key, paid in gateway.refund_calls if paid == pid]
    held = {key: made for key, (paid, _, _, made) in gateway.refunds.items() if paid == pid}
    refunded = gateway.refunded_amount(pid)
    # One send per key; an admin's retry after a refund the gateway failed is a new key.
    assert len(calls) == len(set(calls)), f"{pid}: a refund reached the gateway twice: {calls}"
    assert len([r for r in held.values() if r.status != "failed"]) <= 1, f"{pid}: two live gateway refunds"
    assert refunded <= outcome.payment.amount, f"{pid}: {refunded} refunded of {outcome.payment.amount}"
    if not outcome.refunds:
        assert not held and refunded == Decimal(0), f"{pid} bought a booking and was refunded"
        return
    refund = outcome.refunds[0]
    keys = {gateway_key(refund.id, n) for n in range(refund.retries + 1)}
    assert set(held) <= keys, f"{pid}: the gateway holds refunds {set(held)}, ours are {keys}"
    if refund.status == "SUCCEEDED":
        assert refunded == outcome.payment.amount, f"{pid}: SUCCEEDED but {refunded} refunded"
        assert refund.provider_refund_id == held[gateway_key(refund.id, refund.retries)].provider_refund_id


def check_guarantee(world: World) -> None:
    for pid, outcome in outcomes(world).items():
        payment = outcome.payment
        booked = len(outcome.success) == 1 and len(outcome.bookings) == 1
        refunded = len(outcome.refunds) == 1
        where = (f"{pid} of {payment.transaction_id} ({payment.status}, paid by {payment.provider_payment_id}): "
                 f"{len(outcome.success)} SUCCESS payments, {len(outcome.bookings)} bookings, "
                 f"{len(outcome.refunds)} refunds")
        assert len(outcome.success) <= 1 and len(outcome.bookings) <= len(outcome.success), where
        assert len(outcome.refunds) <= 1 and not (outcome.success and outcome.refunds), where
        assert booked != refunded, where
        if refunded:
            refund = outcome.refunds[0]
            assert (refund.transaction_id, refund.amount) == (payment.transaction_id, payment.amount), where
            assert refund.status in ("SUCCEEDED", "FAILED"), where
        check_money(world, pid, outcome)


def test_every_captured_provider_payment_ends_in_one_booking_or_one_refund(make_app, clock):
    app = make_app(GATEWAY=ScriptedGateway(), PAYMENT_TIMEOUT_MINUTES=TIMEOUT_MINUTES,
                   REFUND_MAX_ATTEMPTS=MAX_ATTEMPTS)

    @settings(settings.get_profile("refund-guarantee"))
    @given(steps=STEPS)
    def any_interleaving(steps):
        # Hypothesis 6.170 under pytest 9 prints a failing example's arguments as `steps=,`: say them here.
        note("steps:\n" + "\n".join(f"  {step}" for step in steps))
        world = World.fresh(app, clock)
        for step in steps:
            step(world)
        settle(world)
        check_guarantee(world)

    any_interleaving()


def test_a_second_capture_of_a_paid_order_that_never_reaches_us_is_refunded(make_app, clock):
    """The gateway captures two provider payments of one order; only the second reaches us, and
    succeeds the payment. The first is money taken that bought nothing: only reconciliation, asking
    about the SUCCESS payment's order too, can find it.
    """
    app = make_app(GATEWAY=ScriptedGateway(), PAYMENT_TIMEOUT_MINUTES=TIMEOUT_MINUTES,
                   REFUND_MAX_ATTEMPTS=MAX_ATTEMPTS)
    world = World.fresh(app, clock)
    Start(cart=0)(world)
    Capture(payment=0, via="never")(world)
    Capture(payment=0, via="confirm")(world)

    settle(world)

    assert [(r.provider_payment_id, r.status) for r in world.refund_rows()] == [("pay_1", "SUCCEEDED")]
    assert world.gateway.refunded_amount("pay_1") == Decimal(PRICES[0])
