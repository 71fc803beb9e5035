"""`flask --app web send-refunds` and `reconcile-payments`: the refund job and reconciliation, run once."""

import contextlib
import sys

import click
from flask import Flask, current_app

from web import reconciliation, refund_job
from web.cli_options import positive_number
from web.config import MAX_MINUTES

SEND_ACTOR = "cli:send-refunds"
RECONCILE_ACTOR = "cli:reconcile-payments"


@contextlib.contextmanager
def _report_on_stdout():
    """stdout carries the command's report alone; the JSON log lines go to stderr."""
    report = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        yield lambda line: click.echo(line, file=report)


def register(app: Flask) -> None:
    @app.cli.command("send-refunds")
    def send_refunds_command():
        """Send every due REQUESTED refund to the gateway once (what the scheduler runs)."""
        with _report_on_stdout() as echo:
            run = refund_job.send_refunds(current_app.extensions["gateway"], clock=current_app.config["CLOCK"],
                                          max_attempts=current_app.config["REFUND_MAX_ATTEMPTS"], actor=SEND_ACTOR)
            refund_job.report(run)
            echo(run.summary())

    @app.cli.command("reconcile-payments")
    @click.option("--hours", callback=positive_number("hours", MAX_MINUTES / 60), metavar="N",
                  help=f"Check the payments closed in the last N hours (default {reconciliation.DEFAULT_HOURS}).")
    def reconcile_payments_command(hours: float | None):
        """Refund captures the gateway holds, bought nothing with, for payments settled in the last N hours."""
        with _report_on_stdout() as echo:
            run = reconciliation.reconcile(current_app.extensions["gateway"], clock=current_app.config["CLOCK"],
                                           hours=hours or reconciliation.DEFAULT_HOURS, actor=RECONCILE_ACTOR)
            reconciliation.report(run)
            for line in run.lines:
                echo(line)
            echo(run.summary())
        if run.unanswered:
            raise click.ClickException(f"The gateway did not answer for {run.unanswered} orders; run it again.")
