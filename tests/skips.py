"""Skips that CI must never take silently: where REQUIRE_POSTGRES_TESTS is set (.ci/run sets it), they fail.

A developer without PostgreSQL, wrk or schemathesis still gets a skip that
says what is missing; CI, which has them all, gets a failure if one is gone.
"""

import os
from typing import NoReturn

import pytest

REQUIRE_ENV = "REQUIRE_POSTGRES_TESTS"


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in {"", "0", "false", "no"}


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test for `reason`, or fail it with the same words where the environment requires it to run."""
    __tracebackhide__ = True  # pytest reports the caller's line, as for a skip made there
    if required():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
