"""The refund endpoints (SPEC §3 Refunds): a payment's refunds, every refund for admins a page at a time, retry."""

import itertools
from decimal import Decimal

import pytest
from sqlalchemy import select

from persistence.db import db
from persistence.models import User
from tests.builders import auth, confirm, make_admin, make_payment, register
from tests.integration.support import assert_json_error, history_rows, snapshot, statements_recorded

UNKNOWN_ID = "0b7c2c1e-5d3a-4f5e-9a1b-2c3d4e5f6a7b"
_provider_payment_ids = (f"pay_{n}" for n in itertools.count(1))  # one refund per provider payment, ever
FIELDS = ["refund_id", "transaction_id", "provider_payment_id", "amount", "currency", "status", "attempts",
          "provider_refund_id", "last_error", "created_at", "updated_at"]


@pytest.fixture
def app_config(gateway) -> dict:
    return {"GATEWAY": gateway}


@pytest.fixture
def admin(app, client) -> dict:
    return make_admin(app, client)


def cancelled_payment(app, client, user) -> dict:
    payment = make_payment(app, client, user)
    assert client.post(f"/api/payments/{payment['transaction_id']}/cancel/",
                       headers=user["headers"]).status_code == 200
    return payment


def late_capture(app, client, user, payment, provider_payment_id: str) -> None:
    """A capture the payment refuses: a refund of `provider_payment_id` is REQUESTED."""
    response = confirm(app, client, user, payment, provider_payment_id=provider_payment_id)
    assert response.status_code == 409 and response.json["reason"] == "payment_not_pending", response.json


def send_refunds(app) -> str:
    result = app.test_cli_runner().invoke(args=["send-refunds"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def refunds_of(client, user, payment):
    return client.get(f"/api/payments/{payment['transaction_id']}/refunds/", headers=user["headers"])


def admin_list(client, admin, query: str = ""):
    return client.get(f"/api/admin/refunds/{query}", headers=admin["headers"])


def retry(client, admin, refund_id: str, **kwargs):
    return client.post(f"/api/admin/refunds/{refund_id}/retry/", headers=admin["headers"], **kwargs)


def newest_first(refunds: list[dict]) -> list[str]:
    """The ids in the documented order, worked out here from the answers' own fields."""
    return [r["refund_id"] for r in sorted(refunds, key=lambda r: (r["created_at"], r["refund_id"]), reverse=True)]


def ids(response) -> list[str]:
    assert response.status_code == 200, response.json
    return [r["refund_id"] for r in response.json]


def requested_refunds(app, client, clock, count: int, *, same_moment_every: int = 1) -> list[dict]:
    """`count` refunds of one customer's payment; every `same_moment_every` of them requested at one moment."""
    user = register(client)
    payment = cancelled_payment(app, client, user)
    for n in range(count):
        if n and n % same_moment_every == 0:
            clock.advance(seconds=1)
        late_capture(app, client, user, payment, next(_provider_payment_ids))
    refunds = refunds_of(client, user, payment).json
    assert len(refunds) == count
    return refunds


def failed_refund(app, client, gateway, user=None) -> tuple[dict, dict]:
    """A refund the gateway refused for good; returns it and its payment's owner."""
    user = user or register(client)
    payment = cancelled_payment(app, client, user)
    late_capture(app, client, user, payment, next(_provider_payment_ids))
    gateway.fail_next("refund", "permanent")
    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 1 failed, 0 to retry"
    [refund] = refunds_of(client, user, payment).json
    assert refund["status"] == "FAILED"
    return refund, user


def user_id_of(app, email: str) -> str:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.email == email))


# ---- GET /api/payments/{transaction_id}/refunds/ -------------------------------------------------

def test_a_customer_sees_the_refund_of_a_late_capture_with_every_field(app, client, clock):
    user = register(client)
    payment = cancelled_payment(app, client, user)
    clock.advance(minutes=5)

    late_capture(app, client, user, payment, "pay_late")
    response = refunds_of(client, user, payment)

    assert response.status_code == 200
    [refund] = response.json
    assert list(refund) == FIELDS
    assert {k: v for k, v in refund.items() if k != "refund_id"} == {
        "transaction_id": payment["transaction_id"], "provider_payment_id": "pay_late", "amount": payment["amount"],
        "currency": "INR", "status": "REQUESTED", "attempts": 0, "provider_refund_id": None, "last_error": None,
        "created_at": "2030-01-15T12:05:00.000Z", "updated_at": "2030-01-15T12:05:00.000Z"}
    assert payment["amount"] == "2500.00"


def test_a_payments_refunds_are_oldest_first_and_those_of_one_moment_by_refund_id(app, client, clock):
    user = register(client)
    payment = cancelled_payment(app, client, user)
    late_capture(app, client, user, payment, "pay_first")
    clock.advance(minutes=1)
    for provider_payment_id in ("pay_tie_1", "pay_tie_2", "pay_tie_3"):
        late_capture(app, client, user, payment, provider_payment_id)
    clock.advance(minutes=1)
    late_capture(app, client, user, payment, "pay_last")

    refunds = refunds_of(client, user, payment).json

    assert refunds[0]["provider_payment_id"] == "pay_first"
    assert refunds[-1]["provider_payment_id"] == "pay_last"
    ties = refunds[1:4]
    assert {r["provider_payment_id"] for r in ties} == {"pay_tie_1", "pay_tie_2", "pay_tie_3"}
    assert [r["refund_id"] for r in ties] == sorted(r["refund_id"] for r in ties)


def test_a_payment_with_no_refund_has_an_empty_list(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    assert confirm(app, client, user, payment).status_code == 200

    response = refunds_of(client, user, payment)

    assert (response.status_code, response.json) == (200, [])


def test_the_refunds_of_another_users_payment_or_of_no_payment_are_not_found(app, client):
    owner, stranger = register(client), register(client)
    payment = cancelled_payment(app, client, owner)
    late_capture(app, client, owner, payment, "pay_late")

    assert_json_error(refunds_of(client, stranger, payment), 404, detail="No such payment.")
    assert_json_error(client.get("/api/payments/TXNAAAAAAAAAAAA/refunds/", headers=owner["headers"]), 404)
    assert_json_error(client.get("/api/payments/txn-bad/refunds/", headers=owner["headers"]), 404)
    assert_json_error(client.get(f"/api/payments/{payment['transaction_id']}/refunds/"), 401)
    assert len(refunds_of(client, owner, payment).json) == 1


def test_the_customer_sees_the_refund_succeed_once_the_refund_job_sent_it(app, client, gateway, clock):
    user = register(client)
    payment = cancelled_payment(app, client, user)
    late_capture(app, client, user, payment, "pay_late")
    clock.advance(seconds=30)

    assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"

    [refund] = refunds_of(client, user, payment).json
    [(refund_id, (provider_payment_id, _, _, made))] = gateway.refunds.items()
    assert (refund["refund_id"], refund["provider_payment_id"]) == (refund_id, provider_payment_id)
    assert (refund["status"], refund["attempts"], refund["provider_refund_id"], refund["last_error"]) == (
        "SUCCEEDED", 1, made.provider_refund_id, None)
    assert (refund["created_at"], refund["updated_at"]) == ("2030-01-15T12:00:00.000Z", "2030-01-15T12:00:30.000Z")


# ---- GET /api/admin/refunds/ ---------------------------------------------------------------------

def test_the_admin_list_holds_every_users_refunds_newest_first_then_by_refund_id(app, client, clock, admin):
    mine = requested_refunds(app, client, clock, 3)
    theirs = requested_refunds(app, client, clock, 4, same_moment_every=2)  # two pairs requested together
    clock.advance(seconds=1)
    more = requested_refunds(app, client, clock, 2)

    listed = admin_list(client, admin)

    everything = mine + theirs + more
    assert ids(listed) == newest_first(everything)
    assert ids(listed)[:2] == [r["refund_id"] for r in reversed(more)]
    assert listed.json == sorted(everything, key=lambda r: ids(listed).index(r["refund_id"]))


def test_pages_chained_by_before_list_every_refund_once_in_order(app, client, clock, admin):
    refunds = requested_refunds(app, client, clock, 8, same_moment_every=3)  # ties across page boundaries

    pages, query = [], "?limit=3"
    for _ in range(5):  # bounded: a cursor that does not move on must fail the test, not hang it
        page = ids(admin_list(client, admin, query))
        pages.append(page)
        if len(page) < 3:
            break
        query = f"?limit=3&before={page[-1]}"

    assert [len(p) for p in pages] == [3, 3, 2]
    assert [i for p in pages for i in p] == newest_first(refunds)


def test_a_full_last_page_is_followed_by_an_empty_one(app, client, clock, admin):
    refunds = requested_refunds(app, client, clock, 4)

    first = ids(admin_list(client, admin, "?limit=2"))
    second = ids(admin_list(client, admin, f"?limit=2&before={first[-1]}"))
    after_the_oldest = admin_list(client, admin, f"?limit=2&before={second[-1]}")

    assert first + second == newest_first(refunds)
    assert (after_the_oldest.status_code, after_the_oldest.json) == (200, [])


def test_the_page_size_is_50_by_default_and_the_limit_takes_1_to_200(app, client, clock, admin):
    refunds = requested_refunds(app, client, clock, 52, same_moment_every=5)
    ordered = newest_first(refunds)

    assert ids(admin_list(client, admin)) == ordered[:50]
    assert ids(admin_list(client, admin, "?limit=1")) == ordered[:1]
    assert ids(admin_list(client, admin, "?limit=51")) == ordered[:51]
    assert ids(admin_list(client, admin, "?limit=200")) == ordered
    assert ids(admin_list(client, admin, "?limit=007")) == ordered[:7]


def test_the_status_filter_lists_only_refunds_in_that_state_and_pages_within_them(app, client, clock, gateway,
                                                                                   admin):
    failed = [failed_refund(app, client, gateway)[0] for _ in range(3)]
    succeeded = requested_refunds(app, client, clock, 2)
    assert send_refunds(app) == "Sent 2 refunds: 2 succeeded, 0 failed, 0 to retry"
    requested = requested_refunds(app, client, clock, 2)

    assert ids(admin_list(client, admin, "?status=FAILED")) == newest_first(failed)
    assert ids(admin_list(client, admin, "?status=SUCCEEDED")) == newest_first(succeeded)
    assert ids(admin_list(client, admin, "?status=REQUESTED")) == newest_first(requested)
    assert {r["status"] for r in admin_list(client, admin, "?status=SUCCEEDED").json} == {"SUCCEEDED"}
    # `before` is a position: a refund of another state works as well as one of the state asked for.
    newest_failed = newest_first(failed)
    assert ids(admin_list(client, admin, f"?status=FAILED&limit=1&before={newest_failed[0]}")) == newest_failed[1:2]
    assert ids(admin_list(client, admin, f"?status=FAILED&before={newest_first(requested)[-1]}")) == newest_failed


@pytest.mark.parametrize(("query", "bad"), [
    ("?status=failed", {"status"}),
    ("?status=", {"status"}),
    ("?status=CANCELLED", {"status"}),
    ("?limit=0", {"limit"}),
    ("?limit=201", {"limit"}),
    ("?limit=-1", {"limit"}),
    ("?limit=1.5", {"limit"}),
    ("?limit=abc", {"limit"}),
    ("?limit=", {"limit"}),
    ("?limit=%D9%A5", {"limit"}),  # an Arabic-Indic five: ASCII digits only
    ("?limit=99999999999999999999", {"limit"}),
    ("?before=nope", {"before"}),
    ("?before=", {"before"}),
    (f"?before={UNKNOWN_ID.upper()}", {"before"}),
    (f"?before={UNKNOWN_ID}%00", {"before"}),
    ("?status=NOPE&limit=0&before=x", {"status", "limit", "before"}),
])
def test_a_bad_query_parameter_is_a_400_naming_each_one(app, client, clock, admin, query, bad):
    requested_refunds(app, client, clock, 1)

    body = assert_json_error(admin_list(client, admin, query), 400)

    assert set(body["fields"]) == bad
    assert body["detail"].startswith("Invalid query: ")
    assert all(name in body["detail"] for name in bad)


def test_a_before_that_is_no_refunds_id_is_a_400_that_says_so(app, client, clock, admin):
    requested_refunds(app, client, clock, 2)

    body = assert_json_error(admin_list(client, admin, f"?before={UNKNOWN_ID}"), 400)

    assert body["fields"] == {"before": "is not the refund_id of any refund"}
    assert "No refund has the refund_id given as `before`" in body["detail"]


# ---- admins only ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/admin/refunds/"),
    ("GET", "/api/admin/refunds/?status=FAILED&limit=0"),  # 403 before any parameter is looked at
    ("POST", f"/api/admin/refunds/{UNKNOWN_ID}/retry/"),
    ("POST", "/api/admin/refunds/not-a-uuid/retry/"),  # 403 before the path id is looked at
])
def test_a_customer_is_forbidden_the_admin_endpoints_and_nothing_changes(app, client, gateway, method, path):
    refund, user = failed_refund(app, client, gateway)
    path = path.replace(UNKNOWN_ID, refund["refund_id"])
    before = snapshot(app)

    response = client.open(path, method=method, headers=user["headers"])

    assert_json_error(response, 403, error="Forbidden", detail="Only an administrator can see or retry refunds.")
    assert snapshot(app) == before


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/admin/refunds/"),
    ("POST", f"/api/admin/refunds/{UNKNOWN_ID}/retry/"),
    ("POST", "/api/admin/refunds/not-a-uuid/retry/"),
])
@pytest.mark.parametrize("headers", [{}, auth("not-a-token")])
def test_without_a_valid_token_the_admin_endpoints_are_401(app, client, method, path, headers):
    response = client.open(path, method=method, headers=headers)

    assert_json_error(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


# ---- POST /api/admin/refunds/{refund_id}/retry/ --------------------------------------------------

def test_a_retried_failed_refund_is_requested_again_and_the_refund_job_then_refunds_it(app, client, gateway, clock,
                                                                                        admin):
    refund, user = failed_refund(app, client, gateway)
    assert gateway.refunds == {}
    clock.advance(hours=2)

    response = retry(client, admin, refund["refund_id"])

    assert response.status_code == 200
    assert response.json == {**refund, "status": "REQUESTED", "attempts": 0, "updated_at": "2030-01-15T14:00:00.000Z"}
    assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"
    [after] = refunds_of(client, user, {"transaction_id": refund["transaction_id"]}).json
    assert (after["status"], after["attempts"], after["last_error"]) == ("SUCCEEDED", 1, None)
    assert gateway.refunded_amount(refund["provider_payment_id"]) == Decimal(refund["amount"])
    # The permanent refusal never reached the gateway; the retry is sent under its own key.
    assert [call[0] for call in gateway.refund_calls] == [f"{refund['refund_id']}/retry-1"]
    admin_actor = f"user:{user_id_of(app, admin['email'])}"
    assert history_rows(app, "refund", refund["refund_id"]) == [
        ("REQUESTED", "FAILED", "fail", "cli:send-refunds", True),
        ("FAILED", "REQUESTED", "retry", admin_actor, True),
        ("REQUESTED", "SUCCEEDED", "succeed", "cli:send-refunds", True),
    ]


def test_a_retry_takes_an_empty_object_or_no_body_but_refuses_fields(app, client, gateway, admin):
    refund, _ = failed_refund(app, client, gateway)
    before = snapshot(app)

    body = assert_json_error(retry(client, admin, refund["refund_id"], json={"force": True}), 400)
    assert set(body["fields"]) == {"force"}
    assert snapshot(app) == before
    assert retry(client, admin, refund["refund_id"], json={}).json["status"] == "REQUESTED"


@pytest.mark.parametrize("state", ["REQUESTED", "SUCCEEDED"])
def test_retrying_a_refund_that_is_not_failed_is_409_refund_not_failed_and_changes_nothing(app, client, clock, admin,
                                                                                           state):
    [refund] = requested_refunds(app, client, clock, 1)
    if state == "SUCCEEDED":
        assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"
    before = snapshot(app)

    response = retry(client, admin, refund["refund_id"])

    body = assert_json_error(response, 409, reason="refund_not_failed")
    assert body["status"] == state and state in body["detail"]
    assert snapshot(app) == before


def test_retrying_a_refund_twice_is_409_the_second_time(app, client, gateway, admin):
    refund, _ = failed_refund(app, client, gateway)

    assert retry(client, admin, refund["refund_id"]).status_code == 200
    body = assert_json_error(retry(client, admin, refund["refund_id"]), 409, reason="refund_not_failed")
    assert body["status"] == "REQUESTED"


def test_retrying_an_unknown_refund_is_404_and_a_malformed_id_is_404_before_any_query(app, client, admin):
    assert_json_error(retry(client, admin, UNKNOWN_ID), 404, detail="No such refund.")

    with statements_recorded(app) as statements:
        for malformed in ("nope", UNKNOWN_ID.upper(), f"{UNKNOWN_ID}%0A", f"{UNKNOWN_ID}%00"):
            assert_json_error(retry(client, admin, malformed), 404, detail="No such refund.")
    assert [s for s in statements if "refunds" in s] == []
