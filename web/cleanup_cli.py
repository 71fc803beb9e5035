"""`flask --app web cleanup-old-pending-payments`: the sweep from the command line, in the seed's format."""

import contextlib
import sys

import click
from flask import Flask, current_app

from machines import deletion_policy as policy
from persistence import deletion
from persistence.db import db
from persistence.models import Cart
from persistence.sweep import StalePayment, stale_open_payments, sweep
from web.cli_options import positive_number
from web.config import MAX_MINUTES
from web.sweep_report import report_sweep

CLI_ACTOR = "cli:cleanup-old-pending-payments"


positive_minutes = positive_number("minutes", MAX_MINUTES)


def cleanup_old_pending_payments(minutes: float, dry_run: bool, echo=click.echo) -> None:
    """List the open payments at least `minutes` old and (unless a dry run) cancel them."""
    clock, timeout = current_app.config["CLOCK"], current_app.config["PAYMENT_TIMEOUT_MINUTES"]
    now = clock()
    echo(f"Cleaning up pending payments older than {policy.minutes_label(minutes)} minutes...")
    if dry_run:
        found = stale_open_payments(now, minutes)
        _list_found(found, now, echo)
        cart_ids = list(dict.fromkeys(p.cart_id for p in found))
        echo(f"Dry run: would cancel {len(found)} old pending payments affecting {len(cart_ids)} carts")
        return
    # Swept first and listed from what this run cancelled: with every worker's scheduler sweeping too,
    # a list read beforehand could name payments another process cancels, and "Found" and
    # "Successfully cancelled" would disagree.
    # Paced like the scheduler's sweep, not at full speed: the command runs against the live database
    # (the runbook's cure for a dead scheduler, when the backlog is largest), and customers confirming
    # now matter more than how soon a payment already past its timeout is cancelled.
    result = sweep(now=now, timeout_minutes=minutes, actor=CLI_ACTOR)
    report_sweep(result)
    _list_found(result.cancelled, now, echo)
    echo(f"Successfully cancelled {len(result.cancelled)} old pending payments affecting "
         f"{len(result.cart_ids)} carts")
    echo("")
    echo("Affected carts:")
    for cart_id in result.cart_ids:
        cart = db.session.get(Cart, cart_id)
        info = deletion.info_of(cart, deletion.payments_of(cart_id), now=now, timeout_minutes=timeout)
        echo(f"  Cart {cart_id}: Can delete: {info.can_delete}")
    echo("")
    echo("Cleanup completed!")


def _list_found(payments: list[StalePayment], now, echo) -> None:
    echo(f"Found {len(payments)} old pending payments")
    for payment in payments:
        echo(f"  Payment {payment.transaction_id}: {policy.age_minutes(payment.created_at, now)} minutes old, "
             f"Cart: {payment.cart_id}")


def register(app: Flask) -> None:
    @app.cli.command("cleanup-old-pending-payments")
    @click.option("--dry-run", is_flag=True, help="List what would be cancelled; change nothing.")
    @click.option("--minutes", callback=positive_minutes, metavar="N",
                  help="Age threshold in minutes (default: PAYMENT_TIMEOUT_MINUTES).")
    def cleanup_command(dry_run: bool, minutes: float | None):
        """Cancel open payments older than the timeout (or --minutes N)."""
        report = sys.stdout
        # stdout carries the seed's report alone; the sweep's JSON log lines (payment.transition, payments.sweep)
        # go to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            cleanup_old_pending_payments(minutes or current_app.config["PAYMENT_TIMEOUT_MINUTES"], dry_run,
                                         echo=lambda line: click.echo(line, file=report))
