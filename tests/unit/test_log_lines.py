"""Every log line is one whole JSON object, even when threads log at once through structlog and `logging`."""

import json
import logging
import sys
import threading

import structlog

from web import logs

LINES_PER_THREAD = 10000


def test_lines_logged_at_once_by_two_threads_through_both_loggers_are_never_spliced(tmp_path, monkeypatch):
    logs.configure("json")
    out = open(tmp_path / "stdout.log", "w+")
    monkeypatch.setattr(sys, "stdout", out)
    # Switch threads as often as the interpreter can, so a line written in two pieces gets split.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    start = threading.Barrier(2)

    def with_structlog():
        log = structlog.get_logger()
        start.wait()
        for n in range(LINES_PER_THREAD):
            log.info("payment.transition", transaction_id=f"TXN{n:012d}", actor="scheduler:stale-payment-sweep")

    def with_logging():
        log = logging.getLogger("apscheduler.scheduler")
        start.wait()
        for n in range(LINES_PER_THREAD):
            log.info("Running job %s", n)

    threads = [threading.Thread(target=with_structlog), threading.Thread(target=with_logging)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.setswitchinterval(interval)
    monkeypatch.undo()
    out.seek(0)
    lines = out.read().splitlines()
    out.close()

    assert len(lines) == 2 * LINES_PER_THREAD
    events = [json.loads(line) for line in lines]  # a spliced line would not parse
    assert sum(e["event"] == "payment.transition" for e in events) == LINES_PER_THREAD
