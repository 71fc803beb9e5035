"""The booking's one status: a booking is created CONFIRMED and never changes."""

import enum


class BookingStatus(str, enum.Enum):
    CONFIRMED = "CONFIRMED"
