"""The service plus two bare routes, so the floor of the stack's cost is measured through the same stack.

This folder is put on the server's PYTHONPATH behind the checkout being served (bench/stack.py):
the same routes then wrap whichever checkout's `web` is imported, and no checkout needs a bench/
of its own.
"""

from flask import Blueprint

from web import create_app
from web.auth import require_token


def create_bench_app():
    app = create_app()

    @app.get("/bench/baseline")
    def baseline():
        """Return JSON and do nothing else: the floor of the stack's cost."""
        return {"status": "ok"}

    # The checkout's own bearer check and nothing else: less the baseline, what authenticating a request costs.
    authenticated = require_token(Blueprint("bench_authenticated", __name__))

    @authenticated.get("/bench/authenticated")
    def authenticated_baseline():
        """Check the bearer token, then return JSON and do nothing else."""
        return {"status": "ok"}

    app.register_blueprint(authenticated)
    return app
