"""gunicorn settings, read automatically from the working directory; all from the environment."""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
# Sync workers, one more than the cores: on a 2-core box 3 gave the best confirm throughput
# and p99 with PostgreSQL on the same machine (2: 545 req/s, 3: 560, 4: 503 with a worse p99).
workers = int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1))
worker_class = "sync"
# No preload: each worker builds its own app, engine pool and scheduler after
# the fork, so no database connection or scheduler thread is shared across it.
preload_app = False
timeout = 30
graceful_timeout = 10
# gunicorn 25.1+ opens a control socket at one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
# ~/.gunicorn/gunicorn.ctl) and unlinks whatever is there first: every other server on the machine
# (tests, benchmarks, another checkout) would take it from the one before. Nothing here uses gunicornc.
control_socket_disable = True

# --- Operations: JSON logs and Prometheus metrics across workers -------------------------------
import shutil  # noqa: E402
import tempfile  # noqa: E402

# prometheus-client's multiprocess mode: each worker writes its samples to files in this
# directory and /metrics adds them up, whichever worker answers. It must be in the environment
# before prometheus_client is first imported, so it is set here, before the import below.
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_own_multiproc_dir = not os.environ.get(_MULTIPROC_ENV)
if _own_multiproc_dir:
    os.environ[_MULTIPROC_ENV] = tempfile.mkdtemp(prefix="prometheus-multiproc-")

from web.logs import gunicorn_logconfig  # noqa: E402

# gunicorn's own lines (master and workers) through the app's renderer: JSON on stdout.
logconfig_dict = gunicorn_logconfig(os.environ.get("LOG_FORMAT", "json"))


def on_starting(server):
    # Samples left by an earlier server in a directory we were given would be added to ours.
    directory = os.environ[_MULTIPROC_ENV]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_multiproc_dir:
        shutil.rmtree(os.environ[_MULTIPROC_ENV], ignore_errors=True)
