"""Configuration from the environment, overridable by the factory's `config` dict."""

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

DEV_GATEWAY_SECRET = "dev-gateway-secret"
DEV_WEBHOOK_SECRET = "dev-webhook-secret"
# The longest span in minutes (about 100 years) for PAYMENT_TIMEOUT_MINUTES, LOGIN_FAILURE_WINDOW_MINUTES
# and the cleanup command's --minutes: far past it "now - minutes" or "created_at + timeout" leaves the
# range of a datetime, and every request that computes one would be a 500. No payment is that old anyway.
MAX_MINUTES = 52_560_000
# The same span for SWEEP_INTERVAL_SECONDS: APScheduler's first run time, "now + interval", overflows far past it.
MAX_SECONDS = MAX_MINUTES * 60


class ConfigError(ValueError):
    """A configuration value that cannot be used; the app refuses to start."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def _positive_number(name: str, raw) -> float:
    try:
        value = float(Decimal(str(raw)))
    except ArithmeticError:
        raise ConfigError(f"{name} must be a positive number, not {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a positive number, not {raw!r}")
    return value


def _minutes(name: str, raw) -> float:
    value = _positive_number(name, raw)
    if value > MAX_MINUTES:
        raise ConfigError(f"{name} must be at most {MAX_MINUTES} minutes (about 100 years), not {raw!r}")
    return value


def _seconds(name: str, raw) -> float:
    value = _positive_number(name, raw)
    if value > MAX_SECONDS:
        raise ConfigError(f"{name} must be at most {MAX_SECONDS} seconds (about 100 years), not {raw!r}")
    return value


def _positive_int(name: str, raw) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        raise ConfigError(f"{name} must be a positive whole number, not {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be a positive whole number, not {raw!r}")
    return value


def _flag(name: str, raw) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def default_database_url(instance_path: str) -> str:
    return f"sqlite:///{Path(instance_path) / 'cart.db'}"


def load(instance_path: str, overrides: Mapping | None = None, environ: Mapping = os.environ) -> dict:
    """Read every setting of SPEC §4; keys in `overrides` win over the environment."""
    overrides = dict(overrides or {})

    def raw(name, default):
        return overrides.get(name, environ.get(name, default))

    url = raw("DATABASE_URL", None) or default_database_url(instance_path)
    if url.startswith(("postgres://", "postgresql://")):
        raise ConfigError("DATABASE_URL for PostgreSQL must start with postgresql+psycopg://")
    log_format = raw("LOG_FORMAT", "json")
    if log_format not in {"json", "console"}:
        raise ConfigError(f"LOG_FORMAT must be json or console, not {log_format!r}")
    clock: Callable[[], datetime] = overrides.get("CLOCK", utc_now)
    if not callable(clock):
        raise ConfigError("CLOCK must be a zero-argument callable returning an aware UTC datetime")
    settings = {
        "DATABASE_URL": url,
        "PAYMENT_TIMEOUT_MINUTES": _minutes("PAYMENT_TIMEOUT_MINUTES", raw("PAYMENT_TIMEOUT_MINUTES", 30)),
        "SWEEP_INTERVAL_SECONDS": _seconds("SWEEP_INTERVAL_SECONDS", raw("SWEEP_INTERVAL_SECONDS", 60)),
        "SCHEDULER_ENABLED": _flag("SCHEDULER_ENABLED", raw("SCHEDULER_ENABLED", "true")),
        "GATEWAY_SECRET": raw("GATEWAY_SECRET", DEV_GATEWAY_SECRET),
        "GATEWAY_WEBHOOK_SECRET": raw("GATEWAY_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET),
        "CURRENCY": raw("CURRENCY", "INR"),
        "LOG_FORMAT": log_format,
        "LOGIN_MAX_FAILURES_PER_EMAIL": _positive_int("LOGIN_MAX_FAILURES_PER_EMAIL",
                                                      raw("LOGIN_MAX_FAILURES_PER_EMAIL", 5)),
        "LOGIN_MAX_FAILURES_PER_ADDRESS": _positive_int("LOGIN_MAX_FAILURES_PER_ADDRESS",
                                                        raw("LOGIN_MAX_FAILURES_PER_ADDRESS", 50)),
        "LOGIN_FAILURE_WINDOW_MINUTES": _minutes("LOGIN_FAILURE_WINDOW_MINUTES",
                                                 raw("LOGIN_FAILURE_WINDOW_MINUTES", 15)),
        "CLOCK": clock,
        # Not an environment setting: tests pass a cheap method through the factory.
        "PASSWORD_HASH_METHOD": overrides.get("PASSWORD_HASH_METHOD", "scrypt"),
    }
    # Anything else given to the factory (test hooks such as GATEWAY) passes through.
    return {**overrides, **settings}
