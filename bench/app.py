"""The service plus one baseline route, so the baseline runs through the same stack."""

from web import create_app


def create_bench_app():
    app = create_app()

    @app.get("/bench/baseline")
    def baseline():
        """Return JSON and do nothing else: the floor of the stack's cost."""
        return {"status": "ok"}

    return app
