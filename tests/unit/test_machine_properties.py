"""Property tests: whatever triggers arrive, in whatever order, the machines only make the moves of SPEC §1.

The allowed moves are written out here again from the spec, on purpose: a
test that read them from `machines/` would agree with any mistake made there.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machines import CART_MACHINE, PAYMENT_MACHINE, InvalidTransition

OPEN = ("INITIATED", "PENDING")

# (state, trigger) -> destination, per SPEC §1; guards are checked separately below.
PAYMENT_MOVES = {
    ("INITIATED", "submit"): "PENDING",
    ("PENDING", "succeed"): "SUCCESS",
    **{(state, trigger): dest for state in OPEN
       for trigger, dest in (("fail", "FAILED"), ("cancel", "CANCELLED"), ("timeout", "CANCELLED"),
                             ("supersede", "CANCELLED"))},
}
CART_MOVES = {("ACTIVE", "convert"): "CONVERTED", ("ACTIVE", "delete"): "DELETED"}


def payment_guard_passes(trigger: str, facts: dict) -> bool:
    return trigger != "succeed" or facts.get("verified") is True


def cart_guard_passes(trigger: str, facts: dict) -> bool:
    return trigger != "delete" or facts.get("fresh_open_payments") == 0


MACHINES = {
    "payment": (PAYMENT_MACHINE, PAYMENT_MOVES, payment_guard_passes),
    "cart": (CART_MACHINE, CART_MOVES, cart_guard_passes),
}

# Real triggers, plus names a careless table might answer to: auto-transition shortcuts, the state attribute.
NOT_TRIGGERS = ["to_SUCCESS", "to_CONVERTED", "to_DELETED", "status", "trigger", "", "SUCCEED"]
facts = st.fixed_dictionaries({}, optional={
    "verified": st.sampled_from([True, False, None, 1, "true"]),
    "fresh_open_payments": st.sampled_from([0, 1, 2, None, False]),
})


def steps(machine):
    return st.lists(st.tuples(st.sampled_from([*machine.triggers, *NOT_TRIGGERS]), facts), max_size=25)


@pytest.mark.parametrize("kind", MACHINES)
def test_the_tables_allow_exactly_the_moves_of_the_spec(kind):
    machine, moves, _ = MACHINES[kind]
    table = {(source.value, trigger): machine.destination(trigger).value
             for trigger in machine.triggers for source in machine.sources(trigger)}
    assert table == moves


@pytest.mark.parametrize("kind", MACHINES)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_trigger_sequences_only_ever_make_allowed_moves(kind, data):
    machine, moves, guard_passes = MACHINES[kind]
    state = machine.initial.value
    visited = [state]
    for trigger, given_facts in data.draw(steps(machine)):
        allowed = moves.get((state, trigger))
        if allowed is not None and guard_passes(trigger, given_facts):
            assert machine.decide(trigger, state, **given_facts).value == allowed
            state = allowed
        else:
            with pytest.raises(InvalidTransition) as refused:
                machine.decide(trigger, state, **given_facts)
            assert (refused.value.entity, refused.value.trigger, refused.value.state) == (kind, trigger, state)
        visited.append(state)
    reachable = {machine.initial.value} | set(moves.values())
    assert set(visited) <= reachable
    assert all((a, b) == (a, a) or (a, b) in {(s, d) for (s, _), d in moves.items()}
               for a, b in zip(visited, visited[1:]))


@pytest.mark.parametrize("kind", MACHINES)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_state_with_no_way_out_stays_put_whatever_arrives(kind, data):
    machine, moves, _ = MACHINES[kind]
    terminal = [s.value for s in machine.states if not any(source == s.value for source, _ in moves)]
    state = data.draw(st.sampled_from(terminal))
    for trigger, given_facts in data.draw(steps(machine)):
        with pytest.raises(InvalidTransition):
            machine.decide(trigger, state, **given_facts)


@pytest.mark.parametrize("kind", MACHINES)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_deciding_keeps_nothing_in_the_shared_machine(kind, data):
    machine, _, _ = MACHINES[kind]
    state = machine.initial.value
    for trigger, given_facts in data.draw(steps(machine)):
        try:
            state = machine.decide(trigger, state, **given_facts).value
        except InvalidTransition:
            pass
    assert machine.machine.models == []
