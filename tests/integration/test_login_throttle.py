"""Failed logins are limited per email and per client address (issue 5); secrets are kept only as hashes."""

import pytest

from persistence.db import db
from tests.builders import register
from tests.conftest import empty_all_tables
from tests.integration.support import assert_json_error, snapshot

WINDOW_SECONDS = 15 * 60


def log_in(client, email: str, password: str, address: str = "127.0.0.1"):
    return client.post("/api/auth/token", json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def fail(client, email: str, times: int, address: str = "127.0.0.1") -> None:
    for _ in range(times):
        assert log_in(client, email, "wrong-password", address).status_code == 401


def assert_throttled(response, retry_after: int | None = None) -> None:
    body = assert_json_error(response, 429, reason="too_many_failed_logins")
    assert "token" not in body
    seconds = int(response.headers["Retry-After"])
    assert seconds > 0
    if retry_after is not None:
        assert seconds == retry_after


def test_five_failures_for_an_email_block_it_with_a_429_json_and_retry_after(client):
    register(client, "victim@example.com")
    fail(client, "victim@example.com", 5)

    assert_throttled(log_in(client, "victim@example.com", "wrong-password"), retry_after=WINDOW_SECONDS)


def test_four_failures_do_not_block_an_email(client):
    register(client, "careless@example.com")
    fail(client, "careless@example.com", 4)

    assert log_in(client, "careless@example.com", "correct-horse").status_code == 200


def test_the_correct_password_is_refused_too_while_the_email_is_blocked(client):
    register(client, "victim@example.com")
    fail(client, "victim@example.com", 5)

    assert_throttled(log_in(client, "victim@example.com", "correct-horse"))


def test_the_block_is_per_email_whatever_its_letter_case(client):
    register(client, "victim@example.com")
    fail(client, "Victim@Example.com", 3)
    fail(client, "VICTIM@EXAMPLE.COM", 2)

    assert_throttled(log_in(client, "VICTIM@example.com", "correct-horse"))


def test_other_emails_are_not_affected_by_a_blocked_one(client):
    register(client, "victim@example.com")
    register(client, "bystander@example.com")
    fail(client, "victim@example.com", 5)

    assert log_in(client, "bystander@example.com", "correct-horse").status_code == 200


def test_an_email_is_unblocked_once_its_failures_leave_the_window(client, clock):
    register(client, "victim@example.com")
    fail(client, "victim@example.com", 5)
    clock.advance(minutes=10)
    assert_throttled(log_in(client, "victim@example.com", "correct-horse"), retry_after=5 * 60)

    clock.advance(minutes=5)

    assert log_in(client, "victim@example.com", "correct-horse").status_code == 200


def test_a_successful_login_clears_the_emails_failures(client):
    register(client, "forgetful@example.com")
    fail(client, "forgetful@example.com", 4)
    assert log_in(client, "forgetful@example.com", "correct-horse").status_code == 200

    fail(client, "forgetful@example.com", 4)

    assert log_in(client, "forgetful@example.com", "correct-horse").status_code == 200


@pytest.fixture
def strict_client(make_app):
    """A client of an app allowing only three failures per client address."""
    app = make_app(LOGIN_MAX_FAILURES_PER_ADDRESS=3)
    with app.app_context():
        empty_all_tables()
    return app.test_client()


def test_failures_from_one_address_over_many_emails_block_that_address(strict_client):
    client = strict_client
    register(client, "real@example.com")
    for n in range(3):
        fail(client, f"guess{n}@example.com", 1, address="10.0.0.66")

    assert_throttled(log_in(client, "guess9@example.com", "wrong-password", address="10.0.0.66"))
    assert_throttled(log_in(client, "real@example.com", "correct-horse", address="10.0.0.66"))


def test_a_blocked_address_does_not_block_other_addresses(strict_client):
    client = strict_client
    register(client, "real@example.com")
    for n in range(3):
        fail(client, f"guess{n}@example.com", 1, address="10.0.0.66")

    assert log_in(client, "real@example.com", "correct-horse", address="10.0.0.7").status_code == 200


def test_a_refused_login_issues_no_token_and_a_blocked_one_records_nothing_more(app, client):
    register(client, "victim@example.com")
    fail(client, "victim@example.com", 5)
    before = snapshot(app)

    for _ in range(3):
        assert_throttled(log_in(client, "victim@example.com", "correct-horse"))

    assert snapshot(app) == before


def test_passwords_and_tokens_appear_in_no_table_only_their_hashes(app, client):
    password, wrong = "plain-secret-password", "wrong-secret-password"
    user = register(client, "hashed@example.com", password=password)
    second = log_in(client, "hashed@example.com", password)
    assert second.status_code == 200
    assert log_in(client, "hashed@example.com", wrong).status_code == 401
    secrets = [password, wrong, user["token"], second.json["token"]]

    with app.app_context():
        tables = {table.name: [tuple(row) for row in db.session.execute(table.select())]
                  for table in db.metadata.sorted_tables}
    dumped = repr(tables)

    assert tables["users"] and tables["api_tokens"]
    for secret in secrets:
        assert secret not in dumped, secret
