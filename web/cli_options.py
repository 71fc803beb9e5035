"""Option values the CLI commands share: checked by click, so a bad one is a usage error that changes nothing."""

from decimal import Decimal, InvalidOperation

import click


def positive_number(unit: str, longest: float):
    """A click callback: the option must be a positive number of `unit`, at most `longest` (about 100 years)."""

    def check(_ctx, _param, value: str | None) -> float | None:
        if value is None:
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise click.BadParameter(f"must be a positive number of {unit}, not {value!r}") from None
        # float(): "1e-400" is a positive Decimal but 0.0 as a float, which would fall back to the default.
        if not number.is_finite() or number <= 0 or float(number) <= 0:
            raise click.BadParameter(f"must be a positive number of {unit}, not {value!r}")
        if number > longest:
            raise click.BadParameter(f"must be at most {longest:.15g} {unit} (about 100 years), not {value!r}")
        return float(number)

    return check
