"""The one error a state machine raises when it refuses a trigger."""


class InvalidTransition(Exception):
    """A trigger is not allowed from the entity's current state."""

    def __init__(self, entity: str, trigger: str, state: str):
        super().__init__(f"{entity}: trigger {trigger!r} is not allowed from {state}")
        self.entity = entity
        self.trigger = trigger
        self.state = state
