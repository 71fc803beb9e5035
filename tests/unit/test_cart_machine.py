"""The cart machine: every trigger from every state, against an explicit table."""

import itertools

import pytest

from machines import CART_MACHINE, CartStatus, InvalidTransition

C = CartStatus

EXPECTED = {
    ("convert", C.ACTIVE): C.CONVERTED,
    ("delete", C.ACTIVE): C.DELETED,
}
TRIGGERS = ["convert", "delete"]
ALL_GUARDS_PASS = {"fresh_open_payments": 0}

MATRIX = list(itertools.product(TRIGGERS, list(CartStatus)))
ALLOWED = [pair for pair in MATRIX if pair in EXPECTED]
REFUSED = [pair for pair in MATRIX if pair not in EXPECTED]


def test_the_machine_has_exactly_the_triggers_of_the_spec():
    assert sorted(CART_MACHINE.triggers) == sorted(TRIGGERS)


def test_the_matrix_has_two_allowed_and_four_refused_pairs():
    assert (len(ALLOWED), len(REFUSED)) == (2, 4)


@pytest.mark.parametrize(("trigger", "source"), ALLOWED, ids=[f"{t}-from-{s.value}" for t, s in ALLOWED])
def test_an_allowed_trigger_leads_to_its_destination(trigger, source):
    assert CART_MACHINE.decide(trigger, source, **ALL_GUARDS_PASS) is EXPECTED[(trigger, source)]
    assert CART_MACHINE.decide(trigger, source.value, **ALL_GUARDS_PASS) is EXPECTED[(trigger, source)]


@pytest.mark.parametrize(("trigger", "source"), REFUSED, ids=[f"{t}-from-{s.value}" for t, s in REFUSED])
def test_a_trigger_not_allowed_from_a_state_is_refused(trigger, source):
    with pytest.raises(InvalidTransition) as refused:
        CART_MACHINE.decide(trigger, source, **ALL_GUARDS_PASS)
    assert (refused.value.entity, refused.value.trigger, refused.value.state) == ("cart", trigger, source.value)


@pytest.mark.parametrize("facts", [{}, {"fresh_open_payments": 1}, {"fresh_open_payments": 3},
                                   {"fresh_open_payments": None}])
def test_delete_is_refused_while_fresh_open_payments_remain_or_are_unknown(facts):
    with pytest.raises(InvalidTransition) as refused:
        CART_MACHINE.decide("delete", C.ACTIVE, **facts)
    assert (refused.value.trigger, refused.value.state) == ("delete", "ACTIVE")


def test_delete_with_no_fresh_open_payments_reaches_deleted():
    assert CART_MACHINE.decide("delete", C.ACTIVE, fresh_open_payments=0) is C.DELETED


def test_convert_has_no_guard():
    assert CART_MACHINE.decide("convert", C.ACTIVE) is C.CONVERTED


@pytest.mark.parametrize("trigger", ["activate", "", "DELETE", "to_ACTIVE"])
def test_an_unknown_trigger_is_refused(trigger):
    with pytest.raises(InvalidTransition) as refused:
        CART_MACHINE.decide(trigger, C.ACTIVE, fresh_open_payments=0)
    assert refused.value.trigger == trigger


@pytest.mark.parametrize("state", list(CartStatus))
def test_there_is_no_automatic_to_state_transition(state):
    assert f"to_{state.value}" not in CART_MACHINE.machine.events
    for source in CartStatus:
        with pytest.raises(InvalidTransition):
            CART_MACHINE.decide(f"to_{state.value}", source)


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_sources_and_destination_come_from_the_table(trigger):
    assert CART_MACHINE.sources(trigger) == (C.ACTIVE,)
    assert CART_MACHINE.destination(trigger) is {"convert": C.CONVERTED, "delete": C.DELETED}[trigger]


def test_a_new_cart_starts_active():
    assert CART_MACHINE.initial is C.ACTIVE


def test_converted_and_deleted_are_final():
    for state in (C.CONVERTED, C.DELETED):
        for trigger in TRIGGERS:
            with pytest.raises(InvalidTransition):
                CART_MACHINE.decide(trigger, state, fresh_open_payments=0)
