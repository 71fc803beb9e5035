"""Configuration from the environment (SPEC §4, web/config.py): what is refused, the defaults, what wins."""

import pytest

from web.config import MAX_MINUTES, MAX_SECONDS, ConfigError, load

INSTANCE = "/nonexistent/instance"


def settings(**environ) -> dict:
    return load(INSTANCE, environ=environ)


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "", "nan", "inf", "-0.5", "1e-400"])
def test_a_payment_timeout_that_is_not_a_positive_number_is_refused(raw):
    with pytest.raises(ConfigError, match="PAYMENT_TIMEOUT_MINUTES must be a positive number"):
        settings(PAYMENT_TIMEOUT_MINUTES=raw)


@pytest.mark.parametrize(("raw", "minutes"), [("0.5", 0.5), ("1.25", 1.25), ("45", 45.0)])
def test_a_payment_timeout_may_be_a_fraction_of_a_minute(raw, minutes):
    assert settings(PAYMENT_TIMEOUT_MINUTES=raw)["PAYMENT_TIMEOUT_MINUTES"] == minutes


def test_the_payment_timeout_defaults_to_thirty_minutes():
    assert settings()["PAYMENT_TIMEOUT_MINUTES"] == 30


@pytest.mark.parametrize("raw", [str(MAX_MINUTES + 1), "1e10", "1e300"])
def test_a_payment_timeout_past_about_a_hundred_years_is_refused(raw):
    # "created_at + timeout" leaves the range of a datetime long before 1e10 minutes: every payment would be a 500.
    with pytest.raises(ConfigError, match=f"PAYMENT_TIMEOUT_MINUTES must be at most {MAX_MINUTES}"):
        settings(PAYMENT_TIMEOUT_MINUTES=raw)


def test_a_token_lives_a_day_unless_configured_otherwise_fractions_of_a_minute_included():
    assert settings()["TOKEN_TTL_MINUTES"] == 1440
    assert settings(TOKEN_TTL_MINUTES="0.5")["TOKEN_TTL_MINUTES"] == 0.5


@pytest.mark.parametrize("raw", ["0", "-5", "abc", "", "nan", "inf", str(MAX_MINUTES + 1)])
def test_a_token_lifetime_that_is_not_a_positive_number_of_minutes_up_to_about_a_hundred_years_is_refused(raw):
    with pytest.raises(ConfigError, match="TOKEN_TTL_MINUTES must be"):
        settings(TOKEN_TTL_MINUTES=raw)


def test_a_login_failure_window_past_about_a_hundred_years_is_refused():
    with pytest.raises(ConfigError, match=f"LOGIN_FAILURE_WINDOW_MINUTES must be at most {MAX_MINUTES}"):
        settings(LOGIN_FAILURE_WINDOW_MINUTES="1e10")


@pytest.mark.parametrize("raw", [str(MAX_SECONDS + 1), "1e12"])
def test_a_sweep_interval_past_about_a_hundred_years_is_refused(raw):
    # APScheduler's first run, "now + interval", would overflow: the app would die starting with a traceback.
    with pytest.raises(ConfigError, match=f"SWEEP_INTERVAL_SECONDS must be at most {MAX_SECONDS}"):
        settings(SWEEP_INTERVAL_SECONDS=raw)


def test_the_longest_payment_timeout_is_the_cleanup_commands_longest_threshold():
    from web import cleanup_cli

    assert settings(PAYMENT_TIMEOUT_MINUTES=str(MAX_MINUTES))["PAYMENT_TIMEOUT_MINUTES"] == MAX_MINUTES
    assert cleanup_cli.positive_minutes(None, None, str(MAX_MINUTES)) == MAX_MINUTES


@pytest.mark.parametrize("url", ["postgres://app@db/cart", "postgresql://app@db/cart"])
def test_a_postgresql_url_without_the_psycopg_driver_is_refused(url):
    with pytest.raises(ConfigError, match=r"postgresql\+psycopg://"):
        settings(DATABASE_URL=url)


def test_a_postgresql_url_with_the_psycopg_driver_is_taken_as_given():
    url = "postgresql+psycopg://app@db:5432/cart"

    assert settings(DATABASE_URL=url)["DATABASE_URL"] == url


def test_without_a_database_url_the_database_is_a_sqlite_file_in_the_instance_folder():
    assert settings()["DATABASE_URL"] == f"sqlite:///{INSTANCE}/cart.db"


@pytest.mark.parametrize("raw", ["text", "JSON", "", "plain"])
def test_a_log_format_other_than_json_or_console_is_refused(raw):
    with pytest.raises(ConfigError, match="LOG_FORMAT must be json or console"):
        settings(LOG_FORMAT=raw)


@pytest.mark.parametrize("raw", ["json", "console"])
def test_json_and_console_are_the_log_formats(raw):
    assert settings(LOG_FORMAT=raw)["LOG_FORMAT"] == raw


def test_the_scheduler_is_enabled_unless_switched_off():
    assert settings()["SCHEDULER_ENABLED"] is True


@pytest.mark.parametrize(("raw", "enabled"), [("false", False), ("0", False), ("off", False), ("TRUE", True),
                                              ("yes", True)])
def test_the_scheduler_switch_reads_the_usual_words(raw, enabled):
    assert settings(SCHEDULER_ENABLED=raw)["SCHEDULER_ENABLED"] is enabled


def test_a_scheduler_switch_that_is_neither_true_nor_false_is_refused():
    with pytest.raises(ConfigError, match="SCHEDULER_ENABLED must be true or false"):
        settings(SCHEDULER_ENABLED="maybe")


def test_the_factorys_overrides_win_over_the_environment():
    environ = {"PAYMENT_TIMEOUT_MINUTES": "10", "CURRENCY": "USD", "LOG_FORMAT": "not-even-valid"}

    loaded = load(INSTANCE, {"PAYMENT_TIMEOUT_MINUTES": 45, "LOG_FORMAT": "console"}, environ=environ)

    assert (loaded["PAYMENT_TIMEOUT_MINUTES"], loaded["LOG_FORMAT"], loaded["CURRENCY"]) == (45, "console", "USD")


def test_the_process_environment_is_read_by_default(monkeypatch):
    monkeypatch.setenv("PAYMENT_TIMEOUT_MINUTES", "12.5")
    monkeypatch.setenv("CURRENCY", "EUR")
    monkeypatch.setenv("SCHEDULER_ENABLED", "false")

    loaded = load(INSTANCE)

    assert (loaded["PAYMENT_TIMEOUT_MINUTES"], loaded["CURRENCY"], loaded["SCHEDULER_ENABLED"]) == (12.5, "EUR", False)


RAZORPAY = {"GATEWAY": "razorpay", "RAZORPAY_KEY_ID": "rzp_test_1", "RAZORPAY_KEY_SECRET": "key-secret",
            "RAZORPAY_WEBHOOK_SECRET": "webhook-secret"}


def test_the_gateway_is_offline_unless_razorpay_is_chosen():
    assert settings()["GATEWAY"] == "offline"
    assert settings(**RAZORPAY)["GATEWAY"] == "razorpay"


def test_a_gateway_other_than_offline_or_razorpay_is_refused():
    with pytest.raises(ConfigError, match="GATEWAY must be offline or razorpay, not 'stripe'"):
        settings(GATEWAY="stripe")


@pytest.mark.parametrize("missing", ["RAZORPAY_KEY_ID", "RAZORPAY_KEY_SECRET", "RAZORPAY_WEBHOOK_SECRET"])
def test_razorpay_without_its_keys_and_webhook_secret_is_refused_naming_what_is_missing(missing):
    given = {name: value for name, value in RAZORPAY.items() if name != missing}

    with pytest.raises(ConfigError, match=f"GATEWAY=razorpay needs {missing}:"):
        settings(**given)
    with pytest.raises(ConfigError, match=f"GATEWAY=razorpay needs {missing}:"):
        settings(**{**given, missing: "  "})


def test_the_offline_gateway_needs_no_razorpay_keys():
    assert settings(GATEWAY="offline")["RAZORPAY_KEY_ID"] == ""


def test_razorpay_is_reached_at_its_own_api_unless_another_base_url_is_given():
    assert settings(**RAZORPAY)["RAZORPAY_BASE_URL"] == "https://api.razorpay.com"
    # The SDK appends "/v1/..." to it.
    assert settings(**RAZORPAY, RAZORPAY_BASE_URL="http://127.0.0.1:9010/")["RAZORPAY_BASE_URL"] == \
        "http://127.0.0.1:9010"


@pytest.mark.parametrize("url", ["127.0.0.1:9010", "ftp://example.com", ""])
def test_a_razorpay_base_url_that_is_not_http_is_refused(url):
    with pytest.raises(ConfigError, match="RAZORPAY_BASE_URL must be an http:// or https:// URL"):
        settings(**RAZORPAY, RAZORPAY_BASE_URL=url)


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "301"])
def test_a_razorpay_timeout_that_is_not_a_positive_number_of_seconds_up_to_five_minutes_is_refused(raw):
    with pytest.raises(ConfigError, match="RAZORPAY_TIMEOUT_SECONDS must be"):
        settings(**RAZORPAY, RAZORPAY_TIMEOUT_SECONDS=raw)
