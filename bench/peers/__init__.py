"""The peers measured beside this service (bench/side_by_side.py): what users would run instead.

    before  this service at a commit (`--against`, default DEFAULT_COMMIT)   bench/peers/before.py
    naive   the confirm a team would first write with Flask-SQLAlchemy's ORM  bench/peers/naive/
    seed    the old Django + DRF system of seed 000, from its own virtualenv    bench/peers/seed/

Each module has `served(args, workdir)`, a context manager yielding the running peer, and
`describe(args)`, one line for the report. All answer the same confirm requests as ours (the same
path, JSON and bearer token) against a database of the same schema, seeded by bench/seed.py.
"""

import importlib

NAMES = ("before", "naive", "seed")


def _module(name: str):
    return importlib.import_module(f"bench.peers.{name}")


def served(name: str, args, workdir):
    return _module(name).served(args, workdir)


def describe(name: str, args) -> str:
    return f"{name}: {_module(name).describe(args)}"
