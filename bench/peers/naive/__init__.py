"""*naive*: naive_app.py, served by this virtualenv's gunicorn from this folder, on the working tree's schema."""

from pathlib import Path

from bench.side_by_side import served as serve

HERE = Path(__file__).resolve().parent


def describe(args) -> str:
    return "the confirm as a team would first write it with Flask-SQLAlchemy's ORM (bench/peers/naive)"


def served(args, workdir):
    return serve("naive", "naive", args, workdir, checkout=HERE, app="naive_app:create_app()")
