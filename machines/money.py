"""Money limits: every amount the service stores fits its columns (12 digits, two after the point)."""

from decimal import Decimal

MAX_AMOUNT = Decimal("9999999999.99")


def too_large(amount: Decimal) -> bool:
    return amount > MAX_AMOUNT
