"""Row locks, taken first in every unit of work that writes, in one order.

The order: **the cart row, then its payments (by transaction id), then
anything else** (the booking, a refund, history rows, a webhook event, an idempotency
key). Everything that writes a cart or one of its payments — start payment,
submit, confirm and the webhook's capture or failure, cancel, cart edits,
delete, the per-cart sweep — locks the cart with its own first statement. Under
PostgreSQL's READ COMMITTED every later statement of the transaction then sees
all that committed before the lock was granted, and nothing that involves the
cart can commit until this transaction ends: per cart, these writes run one
after another. The global sweep is the one exception: it locks payment rows
only, with SKIP LOCKED, so it never waits and cannot deadlock with this order.

On SQLite `FOR UPDATE` is not rendered: a unit of work's transaction begins
IMMEDIATE and so excludes every other writer for its whole length.
"""

from sqlalchemy import Select, bindparam, select

from persistence.db import db
from persistence.errors import NotFound
from persistence.models import Cart, Payment, Refund


def owned_cart(user_id: str, cart_id: str) -> Select:
    """The query of one of the caller's carts; another user's cart is not found."""
    return select(Cart).where(Cart.id == cart_id, Cart.user_id == user_id)


def owned_payment(user_id: str, transaction_id: str) -> Select:
    """The query of one of the caller's payments; another user's payment is not found."""
    return select(Payment).where(Payment.transaction_id == transaction_id, Payment.user_id == user_id)


# The locking reads, built once with bound values (SQLAlchemy then keeps each one's compiled form and
# cache key); populate_existing: a row locked now replaces whatever an earlier read of it left in the session.
def _locking(query: Select, of=None) -> Select:
    return query.with_for_update(of=of).execution_options(populate_existing=True)


_CART = _locking(select(Cart).where(Cart.id == bindparam("cart_id"), Cart.user_id == bindparam("user_id")))
_CART_OF_PAYMENT = _locking(select(Cart).join(Payment, Payment.cart_id == Cart.id)
                            .where(Payment.transaction_id == bindparam("transaction_id")), of=Cart)
_CART_OF_OWNED_PAYMENT = _CART_OF_PAYMENT.where(Payment.user_id == bindparam("user_id"))
_CART_OF_ORDER = _locking(select(Cart).join(Payment, Payment.cart_id == Cart.id)
                          .where(Payment.provider_order_id == bindparam("provider_order_id")), of=Cart)
_PAYMENT = _locking(select(Payment).where(Payment.transaction_id == bindparam("transaction_id")))
_REFUND = _locking(select(Refund).where(Refund.id == bindparam("refund_id")))
_REFUND_OF_PROVIDER_PAYMENT = _locking(select(Refund).where(
    Refund.provider_payment_id == bindparam("provider_payment_id")))
_PAYMENTS_OF_CART = _locking(select(Payment).where(Payment.cart_id == bindparam("cart_id"))
                             .order_by(Payment.created_at.desc(), Payment.transaction_id))


def lock_cart(user_id: str, cart_id: str) -> Cart:
    """Lock one of the caller's carts (NotFound for anyone else's)."""
    return _one(_CART, "cart", cart_id=cart_id, user_id=user_id)


def lock_cart_of_payment(transaction_id: str, *, user_id: str | None = None) -> Cart:
    """Lock the cart of a payment (of the caller's, when `user_id` is given), before the payment itself."""
    if user_id is None:
        return _one(_CART_OF_PAYMENT, "payment", transaction_id=transaction_id)
    return _one(_CART_OF_OWNED_PAYMENT, "payment", transaction_id=transaction_id, user_id=user_id)


def lock_cart_of_order(provider_order_id: str) -> Cart | None:
    """Lock the cart of the payment behind a gateway order; None for an order we never made."""
    return db.session.scalar(_CART_OF_ORDER, {"provider_order_id": provider_order_id})


def lock_payment(transaction_id: str) -> Payment:
    """Lock one payment whose cart the caller has locked."""
    return db.session.scalar(_PAYMENT, {"transaction_id": transaction_id})


def lock_payments_of_cart(cart_id: str) -> list[Payment]:
    """Lock every payment of a cart the caller has locked, newest first (as the deletion answers list them).

    Only the holder of the cart lock takes these row locks and waits for them (the global sweep
    skips locked rows), so the order they are taken in cannot deadlock.
    """
    return list(db.session.scalars(_PAYMENTS_OF_CART, {"cart_id": cart_id}))


def lock_refund(refund_id: str) -> Refund | None:
    """Lock one refund. Refunds come after carts and payments; a unit that locks a refund alone locks nothing else."""
    return db.session.scalar(_REFUND, {"refund_id": refund_id})


def lock_refund_of_provider_payment(provider_payment_id: str) -> Refund | None:
    """Lock the refund of a provider payment, if one was requested."""
    return db.session.scalar(_REFUND_OF_PROVIDER_PAYMENT, {"provider_payment_id": provider_payment_id})


def _one(query: Select, what: str, **params) -> Cart:
    cart = db.session.scalar(query, params)
    if cart is None:
        raise NotFound(what)
    return cart
