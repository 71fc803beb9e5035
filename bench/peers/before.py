"""*before*: this service at a given commit, exported by bench/checkout.py and served with its own code.

It is migrated by its own `flask --app web init-db`, since schemas may differ between commits, and
served with its own gunicorn.conf.py but the same workers and worker class as ours.
"""

from bench.checkout import export, resolve
from bench.side_by_side import SERVICE_SCENARIOS, served as serve_checkout

# main when the peers came in (issue 15): every later change is measured against where it started.
DEFAULT_COMMIT = "9b1caf7"


def commit(args) -> str:
    return args.against or DEFAULT_COMMIT


def label(args) -> str:
    return f"before {resolve(commit(args))[:10]}"


def describe(args) -> str:
    return f"this service at {commit(args)} ({resolve(commit(args))[:10]})"


def served(args, workdir):
    tree = export(resolve(commit(args)), workdir / "before")
    return serve_checkout(label(args), "before", args, workdir, schema_from=tree, checkout=tree,
                          scenarios=SERVICE_SCENARIOS)
