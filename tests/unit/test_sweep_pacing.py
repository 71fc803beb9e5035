"""The global sweep rests after each batch in proportion to how long the batch took."""

import pytest

from persistence.sweep import rest_after


def test_at_half_the_time_a_batch_rests_as_long_as_it_took():
    assert rest_after(0.035, share=0.5) == pytest.approx(0.035)


def test_at_a_quarter_of_the_time_a_batch_rests_three_times_as_long_as_it_took():
    assert rest_after(0.02, share=0.25) == pytest.approx(0.06)


def test_batches_and_their_rests_fill_exactly_the_share_of_the_time_however_long_each_batch_takes():
    holds = [0.001, 0.035, 0.4, 0.012]
    for share in (0.5, 0.33, 0.25):
        rests = [rest_after(h, share) for h in holds]
        assert sum(holds) / (sum(holds) + sum(rests)) == pytest.approx(share)


def test_a_sweep_allowed_all_of_the_time_never_rests():
    assert rest_after(0.035, share=1.0) == 0.0
