"""The hot paths' row snapshots must mirror their models column for column."""

import pytest

from persistence.models import Booking, Cart, Payment
from persistence.rows import BookingRow, CartRow, PaymentRow


@pytest.mark.parametrize("snapshot, model", [(PaymentRow, Payment), (CartRow, Cart), (BookingRow, Booking)])
def test_a_snapshot_has_exactly_the_columns_of_its_model(snapshot, model):
    assert [column.key for column in snapshot.columns()] == [column.key for column in model.__table__.columns]


def test_a_snapshot_is_built_from_its_slice_of_a_joined_row():
    values = ["before", *[f"p{i}" for i in range(PaymentRow.width())], *[f"c{i}" for i in range(CartRow.width())]]

    payment = PaymentRow.from_values(values, 1)
    cart = CartRow.from_values(values, 1 + PaymentRow.width())

    assert (payment.transaction_id, payment.updated_at) == ("p0", f"p{PaymentRow.width() - 1}")
    assert (cart.id, cart.updated_at) == ("c0", f"c{CartRow.width() - 1}")
