"""The service plus one baseline route, so the baseline runs through the same stack.

This folder is put on the server's PYTHONPATH behind the checkout being served (bench/stack.py):
the same baseline route then wraps whichever checkout's `web` is imported, and no checkout
needs a bench/ of its own.
"""

from web import create_app


def create_bench_app():
    app = create_app()

    @app.get("/bench/baseline")
    def baseline():
        """Return JSON and do nothing else: the floor of the stack's cost."""
        return {"status": "ok"}

    return app
