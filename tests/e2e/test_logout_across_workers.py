"""A logout holds at once on every gunicorn worker, each of which served the token just before (SPEC §3 Auth).

Every worker must have seen the token first, or a worker that remembered it
could never be caught. To reach each worker for certain, not by luck, one
request per worker is sent up to its last header line and held there: a sync
worker serves one connection at a time, from accept to its last byte, so with
as many requests held as there are workers, each worker holds exactly one.
Which worker holds which is read from /proc (the worker's socket to the
request's port), not from anything the service says about itself. Then every
held request is finished, and each worker answers it.
"""

import socket
import time

import pytest

from tests.e2e.helpers import REQUEST_TIMEOUT_SECONDS
from tests.e2e.service import WORKERS, GunicornServer

pytestmark = pytest.mark.e2e

HOLD_TIMEOUT_SECONDS = 10
PATH = "/api/bookings/"


class HeldRequest:
    """A GET sent up to its last header line: the worker that accepts it waits for the rest."""

    def __init__(self, port: int, token: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT_SECONDS)
        self.sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n".encode())
        self.port = self.sock.getsockname()[1]

    def finish(self) -> int:
        """Send the end of the headers; the status of the answer."""
        self.sock.sendall(b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := self.sock.recv(65536):
            answer += chunk
        return int(answer.split(b" ", 2)[1])

    def close(self) -> None:
        self.sock.close()


def on_every_worker(server: GunicornServer, token: str) -> dict[int, int]:
    """GET PATH with `token` once on each worker: {worker pid: status}."""
    pids = server.wait_for_workers(WORKERS)
    held = [HeldRequest(server.port, token) for _ in pids]
    try:
        deadline = time.monotonic() + HOLD_TIMEOUT_SECONDS
        while True:
            holder = {port: pid for pid in pids for port in server.client_ports(pid)}
            if all(request.port in holder for request in held):
                break
            assert time.monotonic() < deadline, f"not every held request reached a worker: {holder}"
            time.sleep(0.02)
        assert sorted(holder[request.port] for request in held) == sorted(pids), holder
        return {holder[request.port]: request.finish() for request in held}
    finally:
        for request in held:
            request.close()


def test_a_logged_out_token_is_a_401_on_every_worker_that_served_it_and_the_users_other_token_still_works(live):
    http = live.http
    user = live.api.register()
    other = http.post("/api/auth/token", {"email": user["email"], "password": "correct-horse"})
    assert other.status == 200, other
    token, other_token = user["token"], other.body["token"]
    # Every worker serves both tokens first.
    warmed = on_every_worker(live.server, token)
    assert list(warmed.values()) == [200] * WORKERS, warmed
    assert list(on_every_worker(live.server, other_token).values()) == [200] * WORKERS

    logout = http.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})

    assert (logout.status, logout.text) == (204, "")
    after = on_every_worker(live.server, token)
    assert set(after) == set(warmed) and list(after.values()) == [401] * WORKERS, after
    assert list(on_every_worker(live.server, other_token).values()) == [200] * WORKERS
    again = http.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert again.status == 401 and again.is_json and "reason" not in again.body, again
    assert live.server.unhandled_errors() == []
