"""The one source of "now": config["CLOCK"]."""

from datetime import datetime

from flask import current_app


def now() -> datetime:
    moment = current_app.config["CLOCK"]()
    if moment.tzinfo is None:
        raise RuntimeError("CLOCK must return an aware UTC datetime")
    return moment
