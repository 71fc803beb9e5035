"""*seed*: the old Django + DRF system of seed 000 (seedpeer/), served by gunicorn from a virtualenv of its own.

That virtualenv holds bench/peers/requirements.txt's exact pins, never the service's. It is made
on first use and kept outside the clone, so CI's fresh clones and every worktree share it: at
$BENCH_PEERS_VENV if set, else under $XDG_CACHE_HOME (~/.cache) in a folder named after the pins
and this Python's version. A lock lets two runs starting at once make it only once.
"""

import fcntl
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.side_by_side import served as serve

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE.parent / "requirements.txt"


def virtualenv() -> Path:
    """The peers' virtualenv, made now if it is missing or holds other pins."""
    pins = hashlib.sha1(REQUIREMENTS.read_bytes() + sys.version.encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = Path(os.environ.get("BENCH_PEERS_VENV") or cache / "bench-peers" / f"venv-{pins}")
    stamp = venv / f".installed-{pins}"
    if stamp.exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            started = time.monotonic()
            print(f"seed peer: making its virtualenv at {venv} (once)", file=sys.stderr)
            for command in ([sys.executable, "-m", "venv", "--clear", str(venv)],
                            [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                             "-r", str(REQUIREMENTS)]):
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"could not make the seed peer's virtualenv: {' '.join(command)}\n"
                             f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
            stamp.touch()
            print(f"seed peer: virtualenv made in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return venv


def describe(args) -> str:
    return "the old system's design of seed 000, Django + DRF, booking before verifying (bench/peers/seed)"


def served(args, workdir):
    gunicorn = virtualenv() / "bin" / "gunicorn"
    return serve("seed", "seed", args, workdir, checkout=HERE, app="seedpeer.wsgi:application", gunicorn=gunicorn,
                 env={"DJANGO_SETTINGS_MODULE": "seedpeer.settings"})
