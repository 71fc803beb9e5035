"""On SQLite the app's writes queue for their turn (persistence/sqlite_writers.py); reads never do."""

import threading

import pytest

from persistence.sqlite_writers import WriterQueue
from tests.builders import register
from web.cli import init_db

WAIT_SECONDS = 10


@pytest.fixture
def sqlite_app(make_app, tmp_path):
    """An app on a SQLite file of its own, whatever database the rest of the suite uses."""
    path = tmp_path / "queued.db"
    app = make_app(DATABASE_URL=f"sqlite:///{path}")
    with app.app_context():
        init_db()
    return app, f"{path}.writers"


def in_thread(call):
    done, answer = threading.Event(), {}

    def run():
        answer["response"] = call()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, answer


def test_a_write_waits_while_another_writer_holds_the_turn_then_goes_through(sqlite_app):
    app, lock_path = sqlite_app
    other_writer = WriterQueue(lock_path)  # another process's writer, as far as the lock can tell
    other_writer.enter()
    try:
        done, answer = in_thread(lambda: register(app.test_client()))
        assert not done.wait(0.5), "a write went ahead while another writer held the turn"
    finally:
        other_writer.leave()
    assert done.wait(WAIT_SECONDS), "the write never got its turn"
    assert answer["response"]["user_id"]


def test_a_read_does_not_wait_for_the_writers_turn(sqlite_app):
    app, lock_path = sqlite_app
    other_writer = WriterQueue(lock_path)
    other_writer.enter()
    try:
        done, answer = in_thread(lambda: app.test_client().get("/api/services/"))
        assert done.wait(WAIT_SECONDS), "a GET waited for the writers' turn"
        assert answer["response"].status_code == 200
    finally:
        other_writer.leave()
