"""Path ids of the wrong form are unknown ids: 404 before any query.

This also keeps bytes PostgreSQL cannot store (a NUL in `%00`) away from the
database, where they would be a driver error instead of a clean 404.

On a blueprint that needs a token the check runs after authentication, so a
caller without one gets 401 whatever the path holds (SPEC §2); every other
request is checked app-wide, first.
"""

import re

from flask import Blueprint, Flask, request

from persistence.errors import NotFound

# Used with fullmatch: `$` would also match before a final newline ("%0A" in a path).
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TXN = re.compile(r"TXN[A-Z0-9]{12}")
_FORMS = {"cart_id": ("cart", _UUID), "item_id": ("item", _UUID), "booking_id": ("booking", _UUID),
          "transaction_id": ("payment", _TXN)}
# Blueprints that check their own path ids, in a hook after their authentication.
_CHECKED_BY_BLUEPRINT: set[str] = set()


def _check_path_ids() -> None:
    for name, value in (request.view_args or {}).items():
        if name in _FORMS:
            what, form = _FORMS[name]
            if not form.fullmatch(value):
                raise NotFound(what)


def check_after_earlier_hooks(blueprint: Blueprint) -> None:
    """Check `blueprint`'s path ids after the hooks it registered before this call (its authentication)."""
    blueprint.before_request(_check_path_ids)
    _CHECKED_BY_BLUEPRINT.add(blueprint.name)


def _check_unless_the_blueprint_does() -> None:
    if request.blueprint not in _CHECKED_BY_BLUEPRINT:
        _check_path_ids()


def register(app: Flask) -> None:
    app.before_request(_check_unless_the_blueprint_does)
