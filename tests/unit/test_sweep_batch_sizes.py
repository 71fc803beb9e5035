"""The global sweep sizes its next batch by how long the last one held its locks."""

from persistence.sweep import HOLD_TARGET_S, MAX_BATCH, MIN_BATCH, next_batch_size


def test_a_batch_that_held_its_locks_twice_too_long_makes_the_next_one_a_quarter_smaller():
    assert next_batch_size(1000, 1000, 2 * HOLD_TARGET_S) == 750  # half-way from 1000 to the 500 that fit


def test_a_quick_batch_makes_the_next_one_larger():
    assert next_batch_size(500, 500, HOLD_TARGET_S / 4) == 1250  # half-way from 500 to 2000


def test_batch_sizes_stay_within_their_bounds():
    assert next_batch_size(MIN_BATCH, MIN_BATCH, 100.0) == MIN_BATCH
    assert next_batch_size(MAX_BATCH, MAX_BATCH, 1e-9) == MAX_BATCH


def test_an_empty_or_unmeasured_batch_leaves_the_size_as_it_was():
    assert next_batch_size(500, 0, 0.01) == 500
    assert next_batch_size(500, 500, 0.0) == 500
