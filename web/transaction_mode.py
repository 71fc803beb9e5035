"""How each request's database work begins, chosen before it touches the database.

GET and HEAD only read. A view marked `@writes_in_one_statement` reads and
then makes at most one write statement on any path (the confirm: its capture
is one statement on PostgreSQL), so its statements need no enclosing
transaction. Everything else is a real transaction. See persistence/engine.py.
"""

from flask import current_app, request

from persistence.engine import declare_reads_only, declare_single_statement_writes


def writes_in_one_statement(view):
    """Mark a view whose every code path writes with one statement at most."""
    view.writes_in_one_statement = True
    return view


def declare_for_request() -> None:
    declare_reads_only(request.method in ("GET", "HEAD"))
    view = current_app.view_functions.get(request.endpoint)
    declare_single_statement_writes(getattr(view, "writes_in_one_statement", False))
