"""Path ids of the wrong form are unknown ids: 404 before any query.

This also keeps bytes PostgreSQL cannot store (a NUL in `%00`) away from the
database, where they would be a driver error instead of a clean 404.
"""

import re

from flask import Flask, request

from persistence.errors import NotFound

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TXN = re.compile(r"^TXN[A-Z0-9]{12}$")
_FORMS = {"cart_id": ("cart", _UUID), "item_id": ("item", _UUID), "booking_id": ("booking", _UUID),
          "transaction_id": ("payment", _TXN)}


def _check_path_ids() -> None:
    for name, value in (request.view_args or {}).items():
        if name in _FORMS:
            what, form = _FORMS[name]
            if not form.match(value):
                raise NotFound(what)


def register(app: Flask) -> None:
    app.before_request(_check_path_ids)
