"""The payment machine: every trigger from every state, against an explicit table."""

import itertools

import pytest

from machines import OPEN_PAYMENT_STATES, PAYMENT_MACHINE, InvalidTransition, PaymentStatus

P = PaymentStatus

# (trigger, source) -> destination, written out by hand from SPEC §1. Anything
# missing from this table must be refused.
EXPECTED = {
    ("submit", P.INITIATED): P.PENDING,
    ("succeed", P.PENDING): P.SUCCESS,
    ("fail", P.INITIATED): P.FAILED,
    ("fail", P.PENDING): P.FAILED,
    ("cancel", P.INITIATED): P.CANCELLED,
    ("cancel", P.PENDING): P.CANCELLED,
    ("timeout", P.INITIATED): P.CANCELLED,
    ("timeout", P.PENDING): P.CANCELLED,
    ("supersede", P.INITIATED): P.CANCELLED,
    ("supersede", P.PENDING): P.CANCELLED,
}
TRIGGERS = ["submit", "succeed", "fail", "cancel", "timeout", "supersede"]
# Facts that satisfy every guard, so the matrix tests the source states alone.
ALL_GUARDS_PASS = {"verified": True}

MATRIX = list(itertools.product(TRIGGERS, list(PaymentStatus)))
ALLOWED = [pair for pair in MATRIX if pair in EXPECTED]
REFUSED = [pair for pair in MATRIX if pair not in EXPECTED]


def test_the_machine_has_exactly_the_triggers_of_the_spec():
    assert sorted(PAYMENT_MACHINE.triggers) == sorted(TRIGGERS)


def test_the_expected_table_leaves_some_pairs_refused():
    assert len(ALLOWED) == 10
    assert len(REFUSED) == len(TRIGGERS) * len(PaymentStatus) - 10


@pytest.mark.parametrize(("trigger", "source"), ALLOWED, ids=[f"{t}-from-{s.value}" for t, s in ALLOWED])
def test_an_allowed_trigger_leads_to_its_destination(trigger, source):
    assert PAYMENT_MACHINE.decide(trigger, source, **ALL_GUARDS_PASS) is EXPECTED[(trigger, source)]


@pytest.mark.parametrize(("trigger", "source"), ALLOWED, ids=[f"{t}-from-{s.value}" for t, s in ALLOWED])
def test_an_allowed_trigger_accepts_the_state_as_its_string_value(trigger, source):
    assert PAYMENT_MACHINE.decide(trigger, source.value, **ALL_GUARDS_PASS) is EXPECTED[(trigger, source)]


@pytest.mark.parametrize(("trigger", "source"), REFUSED, ids=[f"{t}-from-{s.value}" for t, s in REFUSED])
def test_a_trigger_not_allowed_from_a_state_is_refused(trigger, source):
    with pytest.raises(InvalidTransition) as refused:
        PAYMENT_MACHINE.decide(trigger, source, **ALL_GUARDS_PASS)
    assert (refused.value.entity, refused.value.trigger, refused.value.state) == ("payment", trigger, source.value)


@pytest.mark.parametrize("facts", [{}, {"verified": False}, {"verified": None}, {"verified": "true"},
                                   {"verified": 1}])
def test_succeed_is_refused_unless_the_capture_was_verified(facts):
    with pytest.raises(InvalidTransition) as refused:
        PAYMENT_MACHINE.decide("succeed", P.PENDING, **facts)
    assert refused.value.state == "PENDING"


def test_succeed_with_a_verified_capture_reaches_success():
    assert PAYMENT_MACHINE.decide("succeed", P.PENDING, verified=True) is P.SUCCESS


@pytest.mark.parametrize("trigger", ["submit", "fail", "cancel", "timeout", "supersede"])
def test_triggers_without_a_guard_need_no_facts(trigger):
    assert PAYMENT_MACHINE.decide(trigger, P.INITIATED if trigger == "submit" else P.PENDING) is not None


@pytest.mark.parametrize("trigger", ["refund", "", "SUCCEED", "to_SUCCESS"])
def test_an_unknown_trigger_is_refused(trigger):
    with pytest.raises(InvalidTransition) as refused:
        PAYMENT_MACHINE.decide(trigger, P.PENDING, verified=True)
    assert refused.value.trigger == trigger


@pytest.mark.parametrize("state", list(PaymentStatus))
def test_there_is_no_automatic_to_state_transition(state):
    assert f"to_{state.value}" not in PAYMENT_MACHINE.machine.events
    for source in PaymentStatus:
        with pytest.raises(InvalidTransition):
            PAYMENT_MACHINE.decide(f"to_{state.value}", source)


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_sources_are_exactly_the_states_the_table_allows(trigger):
    expected = {source for (t, source) in EXPECTED if t == trigger}
    assert set(PAYMENT_MACHINE.sources(trigger)) == expected
    assert len(PAYMENT_MACHINE.sources(trigger)) == len(expected)


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_destination_is_the_state_the_table_names(trigger):
    (expected,) = {dest for (t, _), dest in EXPECTED.items() if t == trigger}
    assert PAYMENT_MACHINE.destination(trigger) is expected


def test_open_payment_states_are_initiated_and_pending():
    assert set(OPEN_PAYMENT_STATES) == {P.INITIATED, P.PENDING}


def test_a_new_payment_starts_initiated():
    assert PAYMENT_MACHINE.initial is P.INITIATED


def test_deciding_does_not_remember_anything_between_calls():
    assert PAYMENT_MACHINE.decide("submit", P.INITIATED) is P.PENDING
    assert PAYMENT_MACHINE.decide("submit", P.INITIATED) is P.PENDING
    with pytest.raises(InvalidTransition):
        PAYMENT_MACHINE.decide("submit", P.PENDING)
