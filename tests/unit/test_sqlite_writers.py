"""SQLite writers take turns through a kernel lock: a waiting writer goes on the moment the holder lets go."""

import threading

from persistence.sqlite_writers import WriterQueue

WAIT_SECONDS = 5


def test_a_second_writer_waits_for_the_first_to_leave_and_then_goes_on(tmp_path):
    queue = WriterQueue(str(tmp_path / "app.db.writers"))
    entered = threading.Event()

    def second_writer():
        queue.enter()
        entered.set()
        queue.leave()

    queue.enter()
    other = threading.Thread(target=second_writer)
    other.start()
    try:
        assert not entered.wait(0.3), "the second writer went in while the first held the turn"
    finally:
        queue.leave()
    assert entered.wait(WAIT_SECONDS), "the second writer never got its turn"
    other.join(WAIT_SECONDS)


def test_a_thread_that_holds_the_turn_may_ask_again_and_one_leave_lets_it_go(tmp_path):
    queue = WriterQueue(str(tmp_path / "app.db.writers"))
    queue.enter()
    queue.enter()  # a nested begin on the same thread must not wait for itself
    queue.leave()
    got_it = threading.Event()
    other = threading.Thread(target=lambda: (queue.enter(), got_it.set(), queue.leave()))
    other.start()
    assert got_it.wait(WAIT_SECONDS)
    other.join(WAIT_SECONDS)


def test_leaving_without_holding_the_turn_does_nothing(tmp_path):
    queue = WriterQueue(str(tmp_path / "app.db.writers"))
    queue.leave()
    queue.enter()
    queue.leave()
