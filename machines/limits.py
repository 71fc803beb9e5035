"""Limits on what a request may make: every amount and quantity the service stores fits its columns and rules."""

from decimal import Decimal

# Amounts are stored with 12 digits, two after the point.
MAX_AMOUNT = Decimal("9999999999.99")
AMOUNT_INTEGER_DIGITS = len(str(int(MAX_AMOUNT)))
# Of one service in one cart.
MAX_QUANTITY = 99


def too_large(amount: Decimal) -> bool:
    return amount > MAX_AMOUNT
