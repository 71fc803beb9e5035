"""Each worker remembers whom a known token speaks for, for a while; an unknown token is never remembered."""

import hashlib
from datetime import UTC, datetime

from sqlalchemy import event, insert

import persistence.accounts
from persistence.db import db
from persistence.models import ApiToken
from tests.builders import register


class TokenLookups:
    """Counts the statements that look a bearer token up."""

    def __init__(self, app):
        with app.app_context():
            self.engine = db.engine
        self.count = 0

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        if "api_tokens.token_hash" in statement:
            self.count += 1

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc):
        event.remove(self.engine, "before_cursor_execute", self._seen)


def test_a_known_token_is_looked_up_once_then_remembered(app, client):
    user = register(client)
    with TokenLookups(app) as lookups:
        assert client.get("/api/bookings/", headers=user["headers"]).status_code == 200
        assert client.get("/api/bookings/", headers=user["headers"]).status_code == 200
    assert lookups.count == 1


def test_a_remembered_token_is_looked_up_again_once_its_memory_is_too_old(app, client, monkeypatch):
    user = register(client)
    assert client.get("/api/bookings/", headers=user["headers"]).status_code == 200
    later = persistence.accounts.time.monotonic() + persistence.accounts.CALLER_MEMORY_SECONDS + 1
    monkeypatch.setattr(persistence.accounts.time, "monotonic", lambda: later)
    with TokenLookups(app) as lookups:
        assert client.get("/api/bookings/", headers=user["headers"]).status_code == 200
    assert lookups.count == 1


def test_an_unknown_token_is_asked_every_time_and_works_as_soon_as_it_exists(app, client):
    user = register(client)
    token = "a-token-issued-after-the-first-try"
    headers = {"Authorization": f"Bearer {token}"}
    with TokenLookups(app) as lookups:
        assert client.get("/api/bookings/", headers=headers).status_code == 401
        assert client.get("/api/bookings/", headers=headers).status_code == 401
    assert lookups.count == 2
    with app.app_context():
        db.session.execute(insert(ApiToken).values(token_hash=hashlib.sha256(token.encode()).hexdigest(),
                                                   user_id=user["user_id"], created_at=datetime.now(UTC)))
        db.session.commit()
    assert client.get("/api/bookings/", headers=headers).status_code == 200
