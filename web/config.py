"""Configuration from the environment, overridable by the factory's `config` dict.

`Settings` declares every setting of SPEC §4 once: its name (the environment
variable's), its type, its bounds and its default. Pydantic parses the
environment's strings; a value it refuses stops the app with a ConfigError
that names the setting and says what it must be (the field's description).
"""

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

DEV_GATEWAY_SECRET = "dev-gateway-secret"
DEV_WEBHOOK_SECRET = "dev-webhook-secret"
# The longest span in minutes (about 100 years) for PAYMENT_TIMEOUT_MINUTES, LOGIN_FAILURE_WINDOW_MINUTES,
# TOKEN_TTL_MINUTES and the cleanup command's --minutes: far past it "now - minutes", "created_at + timeout" or
# "issued_at + ttl" leaves the range of a datetime, and every request that computes one would be a 500. No
# payment is that old anyway.
MAX_MINUTES = 52_560_000
# The same span for SWEEP_INTERVAL_SECONDS: APScheduler's first run time, "now + interval", overflows far past it.
MAX_SECONDS = MAX_MINUTES * 60
# Given only through the factory's `config`, never read from the environment.
FACTORY_ONLY = frozenset({"CLOCK", "PASSWORD_HASH_METHOD"})


class ConfigError(ValueError):
    """A configuration value that cannot be used; the app refuses to start."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def _psycopg_driver(url: str | None) -> str | None:
    if url and url.startswith(("postgres://", "postgresql://")):
        raise ValueError("PostgreSQL needs the psycopg driver")
    return url


GATEWAY_NAMES = ("offline", "razorpay")
# What GATEWAY=razorpay cannot start without: the API key pair and the webhook secret from Razorpay's dashboard.
RAZORPAY_KEYS = ("RAZORPAY_KEY_ID", "RAZORPAY_KEY_SECRET", "RAZORPAY_WEBHOOK_SECRET")


def _gateway(value):
    if isinstance(value, str) and value not in GATEWAY_NAMES:
        raise ValueError("unknown gateway")
    return value


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError("not an http(s) URL")
    # The SDK appends "/v1/..." to it: a trailing slash would make every path "//v1/...".
    return url.rstrip("/")


def _span(longest: int, unit: str):
    return Field(gt=0, le=longest, allow_inf_nan=False, description=f"a positive number of {unit}")


def _some_time(unit: str):
    """Refuse a span too small to be any time at all (1e-300): as a timedelta it is 0, and would act as 0."""

    def check(value: float) -> float:
        if not timedelta(**{unit: value}):
            raise ValueError("shorter than a microsecond")
        return value

    return AfterValidator(check)


Minutes = Annotated[float, _span(MAX_MINUTES, "minutes"), _some_time("minutes")]
Seconds = Annotated[float, _span(MAX_SECONDS, "seconds"), _some_time("seconds")]
Count = Annotated[int, Field(ge=1, description="a positive whole number")]


class Settings(BaseModel):
    """Every setting, named as its environment variable."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_default=True)

    DATABASE_URL: Annotated[str | None, AfterValidator(_psycopg_driver)] = Field(
        None, description="a SQLAlchemy URL; PostgreSQL's must start with postgresql+psycopg://")
    PAYMENT_TIMEOUT_MINUTES: Minutes = 30
    SWEEP_INTERVAL_SECONDS: Seconds = 60
    # Pydantic's booleans: 1/0, true/false, yes/no, on/off, t/f, y/n in any case.
    SCHEDULER_ENABLED: bool = Field(True, description="true or false")
    GATEWAY_SECRET: str = DEV_GATEWAY_SECRET
    GATEWAY_WEBHOOK_SECRET: str = DEV_WEBHOOK_SECRET
    CURRENCY: str = "INR"
    LOG_FORMAT: Literal["json", "console"] = Field("json", description="json or console")
    # A name from the environment; the factory's `config` may also pass a gateway object (tests inject theirs).
    GATEWAY: Annotated[Any, AfterValidator(_gateway)] = Field("offline", description="offline or razorpay")
    RAZORPAY_KEY_ID: str = ""
    RAZORPAY_KEY_SECRET: str = ""
    RAZORPAY_WEBHOOK_SECRET: str = ""
    RAZORPAY_BASE_URL: Annotated[str, AfterValidator(_http_url)] = Field(
        "https://api.razorpay.com", description="an http:// or https:// URL")
    # How long one call to Razorpay may wait to connect, and then for its answer; the caller (a request's worker,
    # the refund job) waits that long.
    # At most a minute: the refund job's claim (persistence/refunds.py CLAIM_LEASE) must outlast two calls.
    RAZORPAY_TIMEOUT_SECONDS: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False,
                                                     description="a positive number of seconds")] = 10
    REFUND_INTERVAL_SECONDS: Seconds = 30
    REFUND_MAX_ATTEMPTS: Count = 8
    # 0 turns the scheduled reconciliation off; the command still runs.
    RECONCILE_INTERVAL_MINUTES: Annotated[float, Field(ge=0, le=MAX_MINUTES, allow_inf_nan=False,
                                                       description="0 (off) or a positive number of minutes")] = 60
    LOGIN_MAX_FAILURES_PER_EMAIL: Count = 5
    LOGIN_MAX_FAILURES_PER_ADDRESS: Count = 50
    LOGIN_FAILURE_WINDOW_MINUTES: Minutes = 15
    # A day: a customer signs in once for a day of booking and paying, and a token that leaks (a log, a
    # shared machine) is good for a day at most; `POST /api/auth/logout` ends one at once.
    TOKEN_TTL_MINUTES: Minutes = 1440
    CLOCK: Callable[[], datetime] = Field(utc_now, description="a callable returning an aware UTC datetime")
    # Tests pass a cheap method through the factory.
    PASSWORD_HASH_METHOD: str = "scrypt"


def _refusal(error: dict) -> str:
    """`NAME must be <what the field's description says>, not <the value given>` (or its bound, if past it)."""
    name = str(error["loc"][0])
    bound = (error.get("ctx") or {}).get("le")
    must = f"at most {bound:.15g}" if error["type"] == "less_than_equal" else Settings.model_fields[name].description
    return f"{name} must be {must}, not {error['input']!r}"


def _require_gateway_keys(settings: Settings) -> None:
    if settings.GATEWAY != "razorpay":
        return
    missing = [name for name in RAZORPAY_KEYS if not getattr(settings, name).strip()]
    if missing:
        raise ConfigError(f"GATEWAY=razorpay needs {', '.join(missing)}: the API key id and secret and the "
                          "webhook secret from Razorpay's dashboard")


def default_database_url(instance_path: str) -> str:
    return f"sqlite:///{Path(instance_path) / 'cart.db'}"


def load(instance_path: str, overrides: Mapping | None = None, environ: Mapping = os.environ) -> dict:
    """Read every setting of SPEC §4; keys in `overrides` win over the environment."""
    overrides = dict(overrides or {})
    given = {name: environ[name] for name in Settings.model_fields.keys() - FACTORY_ONLY if name in environ}
    try:
        settings = Settings.model_validate({**given, **overrides})
    except ValidationError as exc:
        raise ConfigError("; ".join(_refusal(error) for error in exc.errors())) from None
    _require_gateway_keys(settings)
    # Anything else given to the factory (test hooks such as GATEWAY) passes through.
    return {**overrides, **dict(settings),
            "DATABASE_URL": settings.DATABASE_URL or default_database_url(instance_path)}
