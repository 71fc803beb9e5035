"""A clean copy of one git commit's files, to serve beside the working tree (bench --against)."""

import io
import subprocess
import sys
import tarfile
from pathlib import Path

from bench.stack import ROOT


def resolve(commit: str) -> str:
    """The full id of `commit` (any name git understands), or exit saying it is not one."""
    done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"--against {commit}: not a commit of this repository")
    return done.stdout.strip()


def export(commit_id: str, into: Path) -> Path:
    """Write the commit's tracked files into `into` and return it.

    `git archive` rather than `git worktree add`: nothing is registered in the repository,
    so removing the folder is the whole clean-up, even after a run that was killed.
    """
    archive = subprocess.run(["git", "archive", "--format=tar", commit_id], cwd=ROOT, capture_output=True,
                             check=True).stdout
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into
