"""A shared, model-less `transitions.Machine` wrapped as a small decision table.

One machine per kind serves every row: `decide()` hands the machine a
throw-away subject holding the observed state, so there is no per-row
machine object and nothing is retained between calls.
"""

import enum
import logging
from dataclasses import dataclass

from transitions import Machine, MachineError

from machines.errors import InvalidTransition

# transitions logs two INFO lines for every trigger: noise, and a cost on the
# hot path. Its warnings still come through.
logging.getLogger("transitions").setLevel(logging.WARNING)


@dataclass
class _Subject:
    status: enum.Enum


class TransitionTable:
    """The states and transitions of one entity kind, and the answers derived from them."""

    def __init__(self, entity: str, states: type[enum.Enum], initial: enum.Enum, transitions: list[dict]):
        self.entity = entity
        self.states = states
        self.initial = initial
        self.transitions = transitions
        # auto_transitions=False: no to_<STATE>() shortcuts that bypass the table.
        # ignore_invalid_triggers stays off so a wrong source state raises.
        self.machine = Machine(
            model=None,
            states=states,
            transitions=transitions,
            initial=initial,
            auto_transitions=False,
            model_attribute="status",
            send_event=True,
        )
        self._sources = {
            name: tuple(self.states[source] for source in event.transitions)
            for name, event in self.machine.events.items()
        }
        self._dest = {
            name: self.states[next(iter(event.transitions.values()))[0].dest]
            for name, event in self.machine.events.items()
        }

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(self._sources)

    def sources(self, trigger: str) -> tuple[enum.Enum, ...]:
        """States from which `trigger` may fire; the database guard uses exactly these."""
        return self._sources[trigger]

    def destination(self, trigger: str) -> enum.Enum:
        return self._dest[trigger]

    def decide(self, trigger: str, current: enum.Enum | str, **facts) -> enum.Enum:
        """Return the state `trigger` leads to from `current`, or raise InvalidTransition.

        `facts` are handed to the transition's conditions; a failing condition
        and a wrong source state are the same refusal to callers.
        """
        state = self.states(current)
        event = self.machine.events.get(trigger)
        if event is None:
            raise InvalidTransition(self.entity, trigger, state.value)
        subject = _Subject(state)
        try:
            moved = event.trigger(subject, **facts)
        except MachineError:
            moved = False
        if not moved:
            raise InvalidTransition(self.entity, trigger, state.value)
        return subject.status
