"""structlog configuration: one JSON object per line on stdout (or console lines for a human).

Our own events (structlog) and the libraries' (werkzeug, apscheduler,
transitions, gunicorn, alembic: the standard library's `logging`) go through
the same processors and the same renderer, so every line on stdout is one
JSON object. Call `configure()` before the Flask app exists.
"""

import functools
import logging
import sys
import threading

import structlog
from structlog.tracebacks import ExceptionDictTransformer

# A key containing any of these words never reaches a log line with its value.
SENSITIVE_KEY_PARTS = ("password", "token", "secret", "signature", "authorization", "cookie", "api_key")
REDACTED = "[redacted]"

# transitions logs two INFO lines per trigger (see machines/table.py); apscheduler one per job run.
_QUIET_LIBRARIES = {"transitions": logging.WARNING, "apscheduler.executors": logging.WARNING}


@functools.lru_cache(maxsize=4096)
def _names_a_secret(key: str) -> bool:
    # Cached: an app logs a few dozen distinct keys, and this runs for every key of every line.
    lowered = key.lower()
    return any(part in lowered for part in SENSITIVE_KEY_PARTS)


def redact_secrets(_logger, _method, event_dict: dict) -> dict:
    """Replace the value of any key that names a secret; a safety net, not a licence to log them."""
    for key in event_dict:
        if key != "event" and _names_a_secret(key):
            event_dict[key] = REDACTED
    return event_dict


def _shared_processors() -> list:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]


def _final_processors(log_format: str) -> list:
    if log_format == "console":
        # ConsoleRenderer prints exc_info itself, as a readable traceback.
        return [structlog.dev.ConsoleRenderer()]
    # An exception becomes structured JSON ("exception": [{"exc_type", "exc_value", "frames"}]);
    # no frame locals: they may hold a password or a token.
    # No UnicodeDecoder: nothing here logs bytes, and it cost every line a pass over every value.
    return [
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
        structlog.processors.JSONRenderer(),
    ]


_STDOUT_LOCK = threading.Lock()


def write_line(line: str) -> None:
    """Write one log line whole, in one write, to whatever `sys.stdout` is now (pytest swaps it).

    One lock for structlog's events and the standard library's records, and the
    newline in the same write: a request's line and the scheduler thread's can
    never be spliced into one, and each line reaches a file or pipe shared with
    the other gunicorn workers in a single write.
    """
    with _STDOUT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class LineLogger:
    """structlog's output: each rendered event through `write_line`."""

    def msg(self, message: str) -> None:
        write_line(message)

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


_LINE_LOGGER = LineLogger()


def _line_logger_factory(*_args) -> LineLogger:
    return _LINE_LOGGER


class StdoutHandler(logging.StreamHandler):
    """A handler writing each formatted record through `write_line`."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_line(self.format(record))
        except Exception:
            self.handleError(record)


def stdlib_formatter(log_format: str = "json") -> structlog.stdlib.ProcessorFormatter:
    """A `logging.Formatter` rendering standard-library records exactly as structlog events."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder(),
                           *_shared_processors()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_final_processors(log_format)],
    )


def configure(log_format: str = "json") -> None:
    """Configure structlog and route the standard library's loggers through the same renderer."""
    structlog.configure(
        processors=[*_shared_processors(), *_final_processors(log_format)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=_line_logger_factory,
        cache_logger_on_first_use=False,
    )
    handler = StdoutHandler()
    handler.setFormatter(stdlib_formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name, level in _QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(level)
    # Werkzeug's dev server and gunicorn keep no handlers of their own: one line per record, on stdout.
    for name in ("werkzeug", "gunicorn.error", "gunicorn.access", "apscheduler", "alembic"):
        library = logging.getLogger(name)
        library.handlers[:] = []
        library.propagate = True


def gunicorn_logconfig(log_format: str = "json") -> dict:
    """gunicorn's `logconfig_dict`: its master's and workers' own logs as JSON lines on stdout."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": {"()": stdlib_formatter, "log_format": log_format}},
        "handlers": {"stdout": {"()": StdoutHandler, "formatter": "structlog"}},
        "root": {"level": "INFO", "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            # The app's own `request` event says more; gunicorn's access lines would only repeat it.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
        },
    }
