"""The service with a gateway that every process shares through files: `tests.e2e.recording_app:create_app`.

The offline gateway has no memory, so nothing can count how often a refund
reached it. `RecordingGateway` keeps its memory in the directory named by
E2E_GATEWAY_DIR, which the gunicorn workers, their schedulers and any number
of `flask --app tests.e2e.recording_app:create_app ...` commands all see:

- `calls.log`: one line per call that reached the gateway (`refund` when a
  refund is made, `refund-started` when the call began, `captures-asked` per
  question about an order; and `ready` per command loaded, see `create_app`),
  each appended by a single write to a file opened O_APPEND, so lines of
  concurrent processes never interleave;
- `captures`: lines `provider_order_id provider_payment_id` the test writes,
  the captures the gateway holds (`captured_payments`);
- `hold-<call>`: while such a file exists, that call (`refund` or
  `captured_payments`) waits before it answers, as a slow gateway would; if
  the file names a refund_id or provider_order_id, only the calls about it
  wait. A test holds a call to keep one in flight while every other process
  tries.

`find_refund` answers from the `refund` lines, so a resend after a made
refund is found, as the spec asks of a real gateway; a refund still waiting
in its call is not made yet, and is not found.
"""

import os
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import web
from web.config import DEV_GATEWAY_SECRET, DEV_WEBHOOK_SECRET
from web.gateway import GatewayRefund, OfflineGateway, offline_refund_id

DIR_ENV = "E2E_GATEWAY_DIR"
START_ENV = "E2E_START_WHEN"
# A held call gives up waiting after this long, so a test that died never leaves a worker stuck.
HOLD_LIMIT_SECONDS = 60


@dataclass(frozen=True)
class Call:
    """One line of the call log."""

    kind: str
    key: str  # the refund_id of a refund call, the provider_order_id of a question about captures
    provider_payment_id: str
    pid: int


class RecordingGateway(OfflineGateway):
    def __init__(self, directory: Path, secret: str, webhook_secret: str):
        super().__init__(secret, webhook_secret)
        self.directory = directory

    def refund(self, provider_payment_id: str, amount: Decimal, currency: str, refund_id: str) -> GatewayRefund:
        self.record("refund-started", refund_id, provider_payment_id)
        self._wait_while_held("refund", refund_id)
        self.record("refund", refund_id, provider_payment_id)
        return GatewayRefund(offline_refund_id(refund_id), "processed")

    def find_refund(self, provider_payment_id: str, refund_id: str) -> GatewayRefund | None:
        made = any(c.kind == "refund" and c.key == refund_id and c.provider_payment_id == provider_payment_id
                   for c in calls(self.directory))
        return GatewayRefund(offline_refund_id(refund_id), "processed") if made else None

    def captured_payments(self, provider_order_id: str) -> list[str]:
        self.record("captures-asked", provider_order_id, "-")
        self._wait_while_held("captured_payments", provider_order_id)
        path = self.directory / "captures"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line.split()[1] for line in lines if line.split()[:1] == [provider_order_id]]

    def record(self, kind: str, key: str, provider_payment_id: str) -> None:
        """Append one line to the call log."""
        line = f"{kind} {key} {provider_payment_id} {os.getpid()}\n".encode()
        fd = os.open(self.directory / "calls.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def _wait_while_held(self, call: str, key: str) -> None:
        deadline = time.monotonic() + HOLD_LIMIT_SECONDS
        while time.monotonic() < deadline:
            try:
                held_for = (self.directory / f"hold-{call}").read_text().strip()
            except FileNotFoundError:
                return
            if held_for not in ("", key):
                return
            time.sleep(0.005)


def calls(directory: Path) -> list[Call]:
    """Every call the gateway recorded so far, in the order they were made."""
    path = directory / "calls.log"
    if not path.exists():
        return []
    # Only whole lines: one being appended right now may be read half-written.
    lines = path.read_text().split("\n")[:-1]
    return [Call(kind, key, payment_id, int(pid)) for kind, key, payment_id, pid in (line.split() for line in lines)]


def create_app():
    """The service, its gateway a RecordingGateway in E2E_GATEWAY_DIR.

    With E2E_START_WHEN set (commands only), the app is ready, says so in the
    call log (`ready`) and waits until that file exists: commands started
    apart then run their job together.
    """
    gateway = RecordingGateway(Path(os.environ[DIR_ENV]), os.environ.get("GATEWAY_SECRET", DEV_GATEWAY_SECRET),
                               os.environ.get("GATEWAY_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET))
    app = web.create_app({"GATEWAY": gateway})
    if start_when := os.environ.get(START_ENV):
        gateway.record("ready", "-", "-")
        deadline = time.monotonic() + HOLD_LIMIT_SECONDS
        while not Path(start_when).exists() and time.monotonic() < deadline:
            time.sleep(0.005)
    return app


def hold(directory: Path, call: str, key: str = "") -> None:
    """From now on `call` (about `key`, or about anything) waits until `release`."""
    (directory / f"hold-{call}").write_text(key)


def release(directory: Path, call: str) -> None:
    """`call` answers again, and so do the calls waiting in it."""
    (directory / f"hold-{call}").unlink(missing_ok=True)
