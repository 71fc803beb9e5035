"""Late captures and refunds racing over HTTP: gunicorn with three workers on PostgreSQL, and commands beside it.

The service runs `tests.e2e.recording_app`, whose gateway writes every call
it gets to a file that all the processes share, so the test can count how
often a refund reached the gateway whoever sent it. Every worker runs the
refund job each second and reconciliation every 1.2 s, beside the
`flask ... send-refunds` and `reconcile-payments` commands the tests start.
Holding a gateway call keeps one process inside it while all the others try
(SPEC §1 late captures, §3 Refunds, §4 the refund job and reconciliation).
"""

import json
import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.helpers import GATEWAY_SECRET, WEBHOOK_SECRET, at_once, consistency_errors, rows, statuses
from tests.e2e.recording_app import DIR_ENV, START_ENV, calls, hold, release
from tests.e2e.service import BIN, ROOT, Live, live_service
from web.gateway import offline_refund_id

pytestmark = pytest.mark.e2e

RECORDING_APP = "tests.e2e.recording_app:create_app"
REFUND_INTERVAL_SECONDS = 1
SCHEDULER_ENV = {"SCHEDULER_ENABLED": "true", "REFUND_INTERVAL_SECONDS": str(REFUND_INTERVAL_SECONDS),
                 "RECONCILE_INTERVAL_MINUTES": "0.02"}
COMMAND_TIMEOUT_SECONDS = 120
WAIT_SECONDS = 30
SUMMARY = re.compile(r"^Sent (\d+) refunds: (\d+) succeeded, (\d+) failed, (\d+) to retry$", re.MULTILINE)
RECONCILED = re.compile(r"^Checked \d+ orders, found \d+ captures, requested (\d+) refunds$", re.MULTILINE)


@dataclass
class Refunding:
    live: Live
    gateway: Path  # the RecordingGateway's directory


@pytest.fixture(scope="module")
def refunding_live(postgres_server, tmp_path_factory):
    """A service on the recording gateway whose three workers run the refund job every second."""
    gateway = tmp_path_factory.mktemp("e2e-gateway")
    with live_service(postgres_server, tmp_path_factory.mktemp("e2e-refunds"),
                      env={**SCHEDULER_ENV, DIR_ENV: str(gateway)}, app=f"{RECORDING_APP}()") as live:
        yield Refunding(live, gateway)


@pytest.fixture
def refunding(refunding_live):
    """After the test: nothing held, no request hit the generic 500 handler, and the database is consistent."""
    yield refunding_live
    release(refunding_live.gateway, "refund")
    release(refunding_live.gateway, "captured_payments")
    assert refunding_live.live.server.unhandled_errors() == []
    assert job_failures(refunding_live.live.server.log_text()) == []
    assert consistency_errors(refunding_live.live.engine) == []


def job_failures(log: str) -> list[str]:
    """The workers' scheduled jobs' log lines at error level: an exception or a failed refund (logged, not raised)."""
    failed = []
    for line in log.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("job") and (event.get("level") == "error" or "exception" in event):
            failed.append(line)
    return failed


class Command:
    """`flask --app tests.e2e.recording_app:create_app ARGS...` in a subprocess, on the service's database and
    gateway."""

    def __init__(self, refunding: Refunding, *args: str, start_when: Path | None = None):
        env = {**os.environ, "DATABASE_URL": refunding.live.database_url, "SCHEDULER_ENABLED": "false",
               "LOG_FORMAT": "json", "GATEWAY_SECRET": GATEWAY_SECRET, "GATEWAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
               DIR_ENV: str(refunding.gateway), "INSTANCE_PATH": str(refunding.gateway / "instance"),
               **({START_ENV: str(start_when)} if start_when else {})}
        name = refunding.gateway / f"{args[0]}-{uuid.uuid4().hex[:6]}"
        self.stdout = open(f"{name}.out", "w+")
        self.stderr = open(f"{name}.err", "w+")
        self.proc = subprocess.Popen([str(BIN / "flask"), "--app", RECORDING_APP, *args], cwd=ROOT, env=env,
                                     stdout=self.stdout, stderr=self.stderr, text=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def done(self) -> bool:
        return self.proc.poll() is not None

    def finish(self) -> str:
        """Wait for it to end; its report (stdout). It must have succeeded."""
        try:
            self.proc.wait(timeout=COMMAND_TIMEOUT_SECONDS)
        finally:
            self.stop()
        self.stdout.seek(0)
        self.stderr.seek(0)
        output = self.stdout.read()
        assert self.proc.returncode == 0, f"{output}\n{self.stderr.read()[-3000:]}"
        return output

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def command(refunding):
    """Start a command; every command still running when the test ends is killed."""
    started: list[Command] = []

    def start(*args: str, start_when: Path | None = None) -> Command:
        started.append(Command(refunding, *args, start_when=start_when))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def wait_until(condition, what: str, timeout: float = WAIT_SECONDS, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what} after {timeout} s"
        time.sleep(poll)
    return found


def late(seconds: float, call):
    """`call()`, `seconds` from now."""
    time.sleep(seconds)
    return call()


def refund_calls(gateway: Path, refund_id: str) -> list[tuple[str, int]]:
    """(kind, pid) of each refund call that reached the gateway for `refund_id`: `refund-started` as it came
    in, `refund` once the gateway had made the refund."""
    return [(c.kind, c.pid) for c in calls(gateway) if c.key == refund_id and c.kind.startswith("refund")]


def refund_of(engine, provider_payment_id: str) -> list:
    return rows(engine, "SELECT id, transaction_id, status, attempts, amount, provider_refund_id, last_error "
                        "FROM refunds WHERE provider_payment_id = :p", p=provider_payment_id)


def refund_history(engine, refund_id: str) -> list[tuple]:
    return [tuple(r) for r in rows(engine, "SELECT from_state, to_state, trigger, actor, accepted FROM transitions "
                                           "WHERE entity = 'refund' AND entity_id = :r ORDER BY id", r=refund_id)]


def refused_captures(engine, transaction_id: str) -> list:
    return rows(engine, "SELECT from_state, to_state, trigger, actor FROM transitions WHERE entity = 'payment' "
                        "AND entity_id = :t AND NOT accepted ORDER BY id", t=transaction_id)


def test_twenty_late_captures_of_one_payment_and_racing_refund_jobs_send_one_refund_once(refunding, command):
    live, gateway = refunding.live, refunding.gateway
    api = live.api
    user = api.register()
    payment = api.make_payment(user, api.make_cart(user))
    txn = payment["transaction_id"]
    cancelled = live.http.post(f"/api/payments/{txn}/cancel/", headers=user["headers"])
    assert cancelled.status == 200 and cancelled.body["status"] == "CANCELLED", cancelled
    charged = f"pay_{uuid.uuid4().hex[:14]}"
    # Whoever sends the refund first stays inside the gateway's refund call until released.
    hold(gateway, "refund")
    go = gateway / f"go-{uuid.uuid4().hex[:6]}"
    try:
        # Two refund jobs, loaded and waiting to run together the moment the refund is requested.
        senders = [command("send-refunds", start_when=go), command("send-refunds", start_when=go)]
        pids = {c.pid for c in senders}
        wait_until(lambda: pids <= {c.pid for c in calls(gateway) if c.kind == "ready"}, "the commands to load")

        def start_the_commands_once_the_refund_is_requested():
            wait_until(lambda: refund_of(live.engine, charged), "the refund to be requested", poll=0.001)
            go.touch()

        answers = at_once([lambda: api.confirm(user, payment, charged)] * 10
                          + [lambda: api.webhook("payment.captured", payment, charged)] * 10
                          + [start_the_commands_once_the_refund_is_requested])

        confirms, webhooks = answers[:10], answers[10:20]
        assert statuses(confirms) == [409] * 10, confirms
        assert {a.body["reason"] for a in confirms} == {"payment_not_pending"}
        assert statuses(webhooks) == [200] * 10, webhooks
        assert {a.body["outcome"] for a in webhooks} == {"refused"}
        [refund] = refund_of(live.engine, charged)
        assert (refund.transaction_id, str(refund.amount)) == (txn, payment["amount"])
        history = api.payment_history(user, txn)
        assert [(r["trigger"], r["from"], r["to"]) for r in history if not r["accepted"]] == [
            ("succeed", "CANCELLED", "SUCCESS")] * 20

        sender_pid = wait_until(lambda: next((pid for _, pid in refund_calls(gateway, refund.id)), None),
                                "a process to send the refund")
        # With one send in flight, every other command comes and goes, and every worker's job ticks again.
        others = [c for c in senders if c.pid != sender_pid]
        deadline = time.monotonic() + WAIT_SECONDS
        while not all(c.done() for c in others) and time.monotonic() < deadline:
            time.sleep(0.05)
        others_done_in_flight = all(c.done() for c in others)
        time.sleep(2 * REFUND_INTERVAL_SECONDS)
    finally:
        go.touch()
        release(gateway, "refund")

    reports = {c.pid: c.finish() for c in senders}
    wait_until(lambda: refund_of(live.engine, charged)[0].status == "SUCCEEDED", "the refund to succeed")
    time.sleep(2 * REFUND_INTERVAL_SECONDS)  # and no process sends it again afterwards

    assert refund_calls(gateway, refund.id) == [("refund-started", sender_pid), ("refund", sender_pid)]
    assert others_done_in_flight, "a send-refunds command was still running while another process sent the refund"
    by_command = sender_pid in reports
    assert by_command or sender_pid in live.server.worker_pids()
    sent = {pid: SUMMARY.search(report).groups() for pid, report in reports.items()}
    assert sent == {c.pid: ("1", "1", "0", "0") if c.pid == sender_pid else ("0", "0", "0", "0")
                    for c in senders}, reports
    [after] = refund_of(live.engine, charged)
    assert (after.id, after.status, after.attempts) == (refund.id, "SUCCEEDED", 1)
    assert (after.provider_refund_id, after.last_error) == (offline_refund_id(refund.id), None)
    actor = "cli:send-refunds" if by_command else "scheduler:refund-job"
    assert refund_history(live.engine, refund.id) == [("REQUESTED", "SUCCEEDED", "succeed", actor, True)]
    assert len(refused_captures(live.engine, txn)) == 20
    assert api.payment(user, txn)["status"] == "CANCELLED"
    assert api.bookings(user) == []


def test_two_reconciliations_at_once_beside_webhooks_of_the_same_capture_request_one_refund(refunding, command):
    live, gateway = refunding.live, refunding.gateway
    api = live.api
    user = api.register()
    cart_id = api.make_cart(user)
    first, second = api.make_payment(user, cart_id), api.make_payment(user, cart_id)
    booked = api.confirm(user, first, f"pay_{uuid.uuid4().hex[:14]}")
    assert booked.status == 200, booked
    assert api.payment(user, second["transaction_id"])["status"] == "CANCELLED"  # superseded
    # The customer paid the second order too; we never heard of it, but the gateway lists it.
    charged = f"pay_{uuid.uuid4().hex[:14]}"
    order = second["provider_order_id"]
    hold(gateway, "captured_payments", order)
    try:
        with open(gateway / "captures", "a") as captures:
            captures.write(f"{order} {charged}\n")
        reconcilers = [command("reconcile-payments", "--hours", "1"), command("reconcile-payments", "--hours", "1")]
        pids = {c.pid for c in reconcilers}
        wait_until(lambda: pids <= {c.pid for c in calls(gateway) if c.kind == "captures-asked" and c.key == order},
                   "both reconciliations to ask the gateway about the order")
        # Both learn of the capture as ten webhooks bring it, one every 10 ms from then on.
        answers = at_once([lambda: release(gateway, "captured_payments")]
                          + [lambda i=i: late(0.01 * (i + 1), lambda: api.webhook("payment.captured", second, charged))
                             for i in range(10)])
    finally:
        release(gateway, "captured_payments")
    reports = [c.finish() for c in reconcilers]

    webhooks = answers[1:]
    assert statuses(webhooks) == [200] * 10, webhooks
    assert {a.body["outcome"] for a in webhooks} == {"refused"}
    [refund] = refund_of(live.engine, charged)
    assert (refund.transaction_id, str(refund.amount)) == (second["transaction_id"], second["amount"])
    said = [re.search(rf"^Order {order} \(payment {second['transaction_id']}, CANCELLED\): {charged} (.+)$",
                      report, re.MULTILINE) for report in reports]
    assert all(said), reports
    assert sorted(s.group(1) for s in said) in (["already refunded"] * 2, ["already refunded", "refund requested"])
    requested_by_command = sum(int(RECONCILED.search(report).group(1)) for report in reports)
    assert requested_by_command == [s.group(1) for s in said].count("refund requested")
    # Every webhook's refusal is recorded; reconciliation records one only when it is the one that requests the
    # refund (whether a command or a worker's scheduled run), and then only once.
    refused = refused_captures(live.engine, second["transaction_id"])
    assert {(r.from_state, r.to_state, r.trigger) for r in refused} == {("CANCELLED", "SUCCESS", "succeed")}
    by_webhook = [r for r in refused if r.actor.startswith("webhook:")]
    by_reconciliation = [r.actor for r in refused if not r.actor.startswith("webhook:")]
    assert len(by_webhook) == 10
    assert by_reconciliation in ([], ["cli:reconcile-payments"], ["scheduler:reconcile-payments"])
    # ... and it can only be the one that requests it if it came first: after any webhook it was already refunded.
    assert by_reconciliation == [] or refused[0].actor == by_reconciliation[0], [r.actor for r in refused]
    assert by_reconciliation.count("cli:reconcile-payments") == requested_by_command
    # The workers' refund job sends it once.
    wait_until(lambda: refund_of(live.engine, charged)[0].status == "SUCCEEDED", "the refund to succeed")
    assert [kind for kind, _ in refund_calls(gateway, refund.id)] == ["refund-started", "refund"]
    assert [h[:3] + h[4:] for h in refund_history(live.engine, refund.id)] == [
        ("REQUESTED", "SUCCEEDED", "succeed", True)]
    assert [b["transaction_id"] for b in api.bookings(user)] == [first["transaction_id"]]
