"""Path ids of the wrong form are unknown ids: 404 before any query.

This also keeps bytes PostgreSQL cannot store (a NUL in `%00`) away from the
database, where they would be a driver error instead of a clean 404.

On a blueprint that needs a token the check runs after authentication, so a
caller without one gets 401 whatever the path holds (SPEC §2); every other
request is checked app-wide, first.
"""

from flask import Blueprint, Flask, request

from machines.ids import is_transaction_id, is_uuid
from persistence.errors import NotFound

_FORMS = {"cart_id": ("cart", is_uuid), "item_id": ("item", is_uuid), "booking_id": ("booking", is_uuid),
          "transaction_id": ("payment", is_transaction_id), "refund_id": ("refund", is_uuid)}
# Blueprints that check their own path ids, in a hook after their authentication.
_CHECKED_BY_BLUEPRINT: set[str] = set()


def _check_path_ids() -> None:
    for name, value in (request.view_args or {}).items():
        if name in _FORMS:
            what, well_formed = _FORMS[name]
            if not well_formed(value):
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
