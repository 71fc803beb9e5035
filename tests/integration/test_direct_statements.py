"""Direct statements (persistence/direct.py) answer exactly as SQLAlchemy's own execution would."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, insert, literal_column, select
from sqlalchemy.exc import IntegrityError

from persistence.db import db
from persistence.direct import DirectStatement
from persistence.models import Service, User
from persistence.types import UTCDateTime

MOMENT = datetime(2030, 7, 20, 3, 30, tzinfo=UTC)


def test_a_direct_select_returns_the_same_converted_rows_as_sqlalchemy(app):
    statement = select(User.id, User.email, User.created_at).where(User.email == bindparam("p_email"))
    with app.app_context():
        db.session.execute(insert(User).values(id="u1", email="a@example.com", password_hash="!", is_admin=False,
                                               created_at=MOMENT))
        db.session.commit()

        direct = DirectStatement(statement).rows(db.session.connection(), {"p_email": "a@example.com"})
        through_sqlalchemy = [tuple(row) for row in db.session.execute(statement, {"p_email": "a@example.com"})]
        db.session.rollback()

    assert direct == through_sqlalchemy == [("u1", "a@example.com", MOMENT)]
    assert direct[0][2].tzinfo == UTC


def test_a_direct_statement_converts_its_bound_values_like_sqlalchemy(app):
    # A naive datetime is refused by UTCDateTime's bind conversion, on every database.
    statement = select(literal_column("1")).where(bindparam("p_at", type_=UTCDateTime()) != None)  # noqa: E711
    with app.app_context():
        with pytest.raises(Exception, match="naive datetime"):
            DirectStatement(statement).rows(db.session.connection(), {"p_at": datetime(2030, 1, 1)})
        db.session.rollback()


def test_a_direct_statement_that_breaks_a_constraint_raises_sqlalchemys_integrity_error(app):
    statement = DirectStatement(insert(Service).values(
        id=bindparam("p_id"), name="x", price=-1, duration_minutes=60, created_at=bindparam("p_at", type_=UTCDateTime()))
        .returning(Service.id))
    with app.app_context():
        with pytest.raises(IntegrityError):
            statement.rows(db.session.connection(), {"p_id": "s1", "p_at": MOMENT})
        db.session.rollback()
        assert db.session.scalar(select(Service.id)) is None
